//! A bundle split into parts for media of a given size (`--max-part-size`): the one tar
//! stream cut only between entries (never inside an artifact), each part a file of its
//! own, and a part list naming every part's size and SHA-256 with the export it belongs
//! to. Each part can be checked alone against the list; read back, the parts are one
//! stream again, each checked against the list as it ends, so a part from another export,
//! a missing, repeated or reordered part is refused with its number.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The list of a split bundle's parts (what the exporting node signs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartList {
    pub export: String,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// The file name (no directory).
    pub name: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// The payload type of a signed part list.
pub const PART_LIST_TYPE: &str = "application/vnd.accord.bundle-parts+json";

/// Writes one stream into numbered files of at most `max` bytes each, cut only where
/// `boundary` is called with room to spare.
#[derive(Debug)]
pub struct SplitWriter {
    base: PathBuf,
    max: u64,
    file: Option<File>,
    size: u64,
    sha: sha2::Sha256,
    done: Vec<(PathBuf, Part)>,
}

impl SplitWriter {
    /// Parts are `base.001`, `base.002`, ….
    pub fn new(base: &Path, max: u64) -> io::Result<SplitWriter> {
        let mut w = SplitWriter {
            base: base.to_path_buf(),
            max: max.max(1),
            file: None,
            size: 0,
            sha: sha2::Sha256::new(),
            done: Vec::new(),
        };
        w.open()?;
        Ok(w)
    }

    fn path(&self, n: usize) -> PathBuf {
        let mut name = self.base.as_os_str().to_owned();
        name.push(format!(".{n:03}"));
        PathBuf::from(name)
    }

    fn open(&mut self) -> io::Result<()> {
        let path = self.path(self.done.len() + 1);
        self.file = Some(File::create(&path)?);
        self.size = 0;
        self.sha = sha2::Sha256::new();
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all()?;
            let path = self.path(self.done.len() + 1);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let sha = std::mem::take(&mut self.sha);
            self.done.push((
                path,
                Part {
                    name,
                    size: self.size,
                    sha256: hex::encode(sha.finalize()),
                },
            ));
        }
        Ok(())
    }

    /// An entry of `next` bytes (header and padding included) is about to be written:
    /// starts a new part first if it would not fit in this one (unless this one is empty:
    /// an entry larger than a part gets a part of its own).
    pub fn boundary(&mut self, next: u64) -> io::Result<()> {
        if self.size > 0 && self.size.saturating_add(next) > self.max {
            self.close()?;
            self.open()?;
        }
        Ok(())
    }

    /// Ends the last part; returns the parts' paths and the list of them.
    pub fn finish(mut self, export: &str) -> io::Result<(Vec<PathBuf>, PartList)> {
        self.close()?;
        let paths = self.done.iter().map(|(p, _)| p.clone()).collect();
        let list = PartList {
            export: export.to_owned(),
            parts: self.done.into_iter().map(|(_, p)| p).collect(),
        };
        Ok((paths, list))
    }
}

impl Write for SplitWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("the split writer is closed"))?;
        let n = f.write(buf)?;
        if let Some(w) = buf.get(..n) {
            self.sha.update(w);
        }
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// The parts read back as one stream, each checked against `list` as it ends: its size and
/// SHA-256 must be the list's for its place.
#[derive(Debug)]
pub struct PartsReader {
    files: Vec<PathBuf>,
    list: PartList,
    current: Option<(usize, File)>,
    read: u64,
    sha: sha2::Sha256,
    ended: bool,
}

impl PartsReader {
    /// `files` in order; there must be as many as the list names.
    pub fn new(files: Vec<PathBuf>, list: PartList) -> io::Result<PartsReader> {
        // The list is read before its signature can be checked: its names must be plain
        // file names beside it, never a path elsewhere.
        if let Some(bad) = list.parts.iter().find(|p| !plain_name(&p.name)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the part list names {:?}, which is not a plain file name",
                    bad.name
                ),
            ));
        }
        if files.len() != list.parts.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "export {} has {} parts; {} given",
                    list.export,
                    list.parts.len(),
                    files.len()
                ),
            ));
        }
        Ok(PartsReader {
            files,
            list,
            current: None,
            read: 0,
            sha: sha2::Sha256::new(),
            ended: false,
        })
    }

    /// Checks one part file alone against its place in the list.
    pub fn check_part(path: &Path, list: &PartList, n: usize) -> io::Result<()> {
        let want = list.parts.get(n).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the list has no part {}", n + 1),
            )
        })?;
        let mut f = File::open(path)?;
        let mut sha = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let k = f.read(&mut buf)?;
            if k == 0 {
                break;
            }
            sha.update(&buf[..k]);
            size += k as u64;
        }
        mismatch(path, n, want, size, &hex::encode(sha.finalize()))
    }

    fn end_part(&mut self, n: usize) -> io::Result<()> {
        let sha = hex::encode(std::mem::take(&mut self.sha).finalize());
        let want = &self.list.parts[n];
        mismatch(&self.files[n], n, want, self.read, &sha)
    }
}

/// A part's name as the exporter writes it: letters, digits, `.`, `-`, `_`; no `..`.
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn mismatch(path: &Path, n: usize, want: &Part, size: u64, sha: &str) -> io::Result<()> {
    if size != want.size || sha != want.sha256 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "part {} ({}) is not the part this export's list names ({} bytes, sha256 {}; the list says {} bytes, sha256 {}): a damaged part, or one from another export",
                n + 1,
                path.display(),
                size,
                sha,
                want.size,
                want.sha256
            ),
        ));
    }
    Ok(())
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        loop {
            let (n, f) = match &mut self.current {
                Some((n, f)) => (*n, f),
                None => {
                    let n = 0;
                    let f = File::open(&self.files[n])?;
                    self.current = Some((n, f));
                    continue;
                }
            };
            // Never more than the list says the part holds (plus one byte, to see a longer
            // part): a hostile list cannot make this read an endless file for ever.
            let room = self.list.parts[n]
                .size
                .saturating_add(1)
                .saturating_sub(self.read);
            let cap = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
            let k = if cap == 0 {
                0
            } else {
                f.read(&mut buf[..cap])?
            };
            if k > 0 {
                if let Some(got) = buf.get(..k) {
                    self.sha.update(got);
                }
                self.read += k as u64;
                return Ok(k);
            }
            self.end_part(n)?;
            if n + 1 == self.files.len() {
                self.ended = true;
                return Ok(0);
            }
            let f = File::open(&self.files[n + 1])?;
            self.current = Some((n + 1, f));
            self.read = 0;
        }
    }
}
