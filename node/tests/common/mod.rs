//! The shared harness lives in `tests/support` (accord-testsupport); the test files of this
//! crate reach it through these paths.

#![allow(unused_imports)]

pub use accord_testsupport::cli::*;

pub mod cluster {
    pub use accord_testsupport::cluster::*;
}

pub mod releases {
    pub use accord_testsupport::releases::*;
}
