//! Bundles written and read back, and every kind of damage refused with its reason: a
//! changed byte in an artifact or an object, a truncated file, entries reordered, an entry
//! from another export. And a standard tool (skopeo) reads the layout.

use std::io::{Read, Write};

use accord_bundle::layout::{self, blob_path, sha256};
use accord_bundle::{Artifact, ExportInfo, Reader, Release, Writer};

fn artifact(name: &str, data: &[u8]) -> Artifact {
    Artifact {
        name: name.into(),
        size: data.len() as u64,
        sha256: sha256(data),
        blake3: *blake3::hash(data).as_bytes(),
    }
}

struct Fixture {
    files: Vec<(Artifact, Vec<u8>)>,
    releases: Vec<Release>,
}

impl Fixture {
    /// The bytes of the artifact the writer asks for next.
    fn bytes_of(&self, a: &Artifact) -> &[u8] {
        &self
            .files
            .iter()
            .find(|(x, _)| x.sha256 == a.sha256)
            .expect("file")
            .1
    }
}

fn fixture() -> Fixture {
    let chart = vec![7u8; 5000];
    let image: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let sbom = b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec();
    let (a, b, c) = (
        artifact("chart.tgz", &chart),
        artifact("image.tar", &image),
        artifact("sbom.spdx.json", &sbom),
    );
    Fixture {
        releases: vec![
            Release {
                label: "CAP-B01@1.4.0#aaaaaaaaaaaa".into(),
                statement: b"{\"payload\":\"one\"}".to_vec(),
                artifacts: vec![a.clone(), b.clone()],
            },
            // Shares the image with the first: written once.
            Release {
                label: "CAP-B02@2.0.0#bbbbbbbbbbbb".into(),
                statement: b"{\"payload\":\"two\"}".to_vec(),
                artifacts: vec![b.clone(), c.clone()],
            },
        ],
        files: vec![(a, chart), (b, image), (c, sbom)],
    }
}

fn info(id: &str) -> ExportInfo {
    ExportInfo {
        id: id.into(),
        jurisdiction: "uk".into(),
        at: 1_800_000_000,
        key: String::new(),
        signature: String::new(),
    }
}

fn write(f: &Fixture, export: &str) -> Vec<u8> {
    let mut w = Writer::begin(
        Vec::new(),
        b"[]",
        b"catalogue bytes",
        &f.releases,
        &info(export),
    )
    .expect("begin");
    let order: Vec<Artifact> = w.pending().to_vec();
    assert_eq!(order.len(), 3, "the shared image is written once");
    for a in order {
        w.artifact(f.bytes_of(&a)).expect("artifact");
    }
    w.finish().expect("finish")
}

/// What the sink received: each artifact's name and bytes.
type Received = Vec<(String, Vec<u8>)>;

fn read(bytes: &[u8]) -> Result<(accord_bundle::Contents, Received), String> {
    let mut got = Vec::new();
    let contents = Reader::read(bytes, |a, r| {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        got.push((a.name.clone(), v));
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok((contents, got))
}

#[test]
fn a_bundle_reads_back_as_written() {
    let f = fixture();
    let bytes = write(&f, "export-1");
    let (c, got) = read(&bytes).expect("valid");
    assert_eq!(c.export, info("export-1"));
    assert_eq!(c.roots, b"[]");
    assert_eq!(c.catalogue, b"catalogue bytes");
    assert_eq!(c.releases.len(), 2);
    assert_eq!(c.releases[1].artifacts, f.releases[1].artifacts);
    assert_eq!(c.releases[0].statement, f.releases[0].statement);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["chart.tgz", "image.tar", "sbom.spdx.json"]);
    assert_eq!(got[1].1, f.files[1].1);
    // Written deterministically: the same export twice is the same bytes.
    assert_eq!(write(&f, "export-1"), bytes);
}

#[test]
fn the_writer_refuses_bytes_other_than_the_statements() {
    let f = fixture();
    let mut w = Writer::begin(Vec::new(), b"[]", b"c", &f.releases, &info("x")).expect("begin");
    let mut wrong = f.files[0].1.clone();
    wrong[10] ^= 1;
    let err = w.artifact(wrong.as_slice()).expect_err("other bytes");
    assert!(
        err.to_string().contains("not the statement's bytes"),
        "{err}"
    );
}

/// Where in the tar each entry's data starts (offset, size), by path.
fn entries(bytes: &[u8]) -> Vec<(String, u64, u64)> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.path().expect("path").to_string_lossy().into_owned(),
                e.raw_file_position(),
                e.header().size().expect("size"),
            )
        })
        .collect()
}

fn flip(bytes: &[u8], path: &str, at: u64) -> Vec<u8> {
    let (_, off, _) = entries(bytes)
        .into_iter()
        .find(|(p, _, _)| p == path)
        .expect("entry");
    let mut out = bytes.to_vec();
    let i = usize::try_from(off + at).expect("offset");
    out[i] ^= 0x40;
    out
}

#[test]
fn a_changed_byte_anywhere_is_refused_with_the_reason() {
    let f = fixture();
    let bytes = write(&f, "e");
    let image = blob_path(&f.files[1].0.sha256);
    let err = read(&flip(&bytes, &image, 123_456)).expect_err("image");
    assert!(
        err.contains("image.tar does not match its digests"),
        "{err}"
    );
    let statement = blob_path(&sha256(&f.releases[0].statement));
    let err = read(&flip(&bytes, &statement, 3)).expect_err("statement");
    assert!(err.contains("does not match its digest"), "{err}");
    let err = read(&flip(&bytes, "index.json", 2)).expect_err("index");
    assert!(err.contains("index.json"), "{err}");
}

#[test]
fn a_truncated_bundle_is_refused_at_every_cut() {
    let f = fixture();
    let bytes = write(&f, "e");
    for (path, off, size) in entries(&bytes) {
        for cut in [off, off + size / 2] {
            let cut = usize::try_from(cut).expect("cut");
            let err = read(&bytes[..cut]).expect_err(&format!("cut in {path} at {cut}"));
            assert!(
                err.contains("truncated")
                    || err.contains("ends before")
                    || err.contains("cannot read"),
                "cut in {path} at {cut}: {err}"
            );
        }
    }
}

/// A tar with the same entries in another order.
fn rewrite(bytes: &[u8], order: impl Fn(&mut Vec<(String, Vec<u8>)>)) -> Vec<u8> {
    let mut a = tar::Archive::new(bytes);
    let mut all: Vec<(String, Vec<u8>)> = a
        .entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let p = e.path().expect("path").to_string_lossy().into_owned();
            let mut v = Vec::new();
            e.read_to_end(&mut v).expect("read");
            (p, v)
        })
        .collect();
    order(&mut all);
    let mut b = tar::Builder::new(Vec::new());
    for (p, v) in all {
        let mut h = tar::Header::new_ustar();
        h.set_size(v.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, v.as_slice()).expect("append");
    }
    b.into_inner().expect("tar")
}

#[test]
fn reordered_and_mixed_up_bundles_are_refused() {
    let f = fixture();
    let bytes = write(&f, "e");
    let n = entries(&bytes).len();
    // The last two artifacts swapped.
    let swapped = rewrite(&bytes, |all| all.swap(n - 1, n - 2));
    let err = read(&swapped).expect_err("swapped");
    assert!(err.contains("reordered"), "{err}");
    // index.json moved to the end: the artifacts come before it.
    let late_index = rewrite(&bytes, |all| {
        let i = all
            .iter()
            .position(|(p, _)| p == "index.json")
            .expect("index");
        let idx = all.remove(i);
        all.push(idx);
    });
    let err = read(&late_index).expect_err("late index");
    assert!(err.contains("reordered"), "{err}");
    // An artifact of another export slipped in.
    let other = rewrite(&bytes, |all| {
        let data = b"someone else's artifact".to_vec();
        all.push((blob_path(&sha256(&data)), data));
    });
    let err = read(&other).expect_err("mixed");
    assert!(err.contains("no artifact the manifests name"), "{err}");
    // A stray file.
    let stray = rewrite(&bytes, |all| {
        all.insert(1, ("README".into(), b"hi".to_vec()))
    });
    let err = read(&stray).expect_err("stray");
    assert!(err.contains("unexpected entry"), "{err}");
}

/// skopeo (Debian's package; `scripts/test` installs it) reads the bundle as an OCI
/// archive: it copies a release's artifacts out, checking every digest itself.
#[test]
fn skopeo_copies_a_releases_artifacts_out_of_a_bundle() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tmp");
    let tarball = dir.path().join("bundle.tar");
    std::fs::File::create(&tarball)
        .and_then(|mut file| file.write_all(&write(&f, "e")))
        .expect("write");
    let out = dir.path().join("copied");
    let reference = layout::ref_name(&f.releases[0].label);
    let run = std::process::Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci-archive:{}:{reference}", tarball.display()))
        .arg(format!("dir:{}", out.display()))
        .output()
        .expect("skopeo is installed (scripts/test installs it)");
    assert!(
        run.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    for (a, data) in &f.files[..2] {
        let copied = std::fs::read(out.join(hex::encode(a.sha256))).expect("copied layer");
        assert_eq!(&copied, data, "{}", a.name);
    }
    let manifest = std::fs::read_to_string(out.join("manifest.json")).expect("manifest");
    assert!(
        manifest.contains("chart.tgz") && manifest.contains("image.tar"),
        "{manifest}"
    );
}

/// Split at blob boundaries into parts of at most 200 KB (the 300 KB image gets a part of
/// its own): read back as one stream, each part checked against the list; a part of
/// another export, a damaged or a missing part is refused with its number.
#[test]
fn a_split_bundle_reads_back_and_refuses_a_foreign_or_damaged_part() {
    use accord_bundle::parts::{PartsReader, SplitWriter};
    let f = fixture();
    let dir = tempfile::tempdir().expect("tmp");
    let split = |name: &str, export: &str| {
        let base = dir.path().join(name);
        let mut w = Writer::begin(
            SplitWriter::new(&base, 200_000).expect("split"),
            b"[]",
            b"catalogue bytes",
            &f.releases,
            &info(export),
        )
        .expect("begin");
        for a in w.pending().to_vec() {
            w.output()
                .boundary(layout::entry_bytes(a.size))
                .expect("boundary");
            w.artifact(f.bytes_of(&a)).expect("artifact");
        }
        w.finish().expect("finish").finish(export).expect("parts")
    };
    let (paths, list) = split("b", "one");
    assert!(paths.len() >= 3, "{paths:?}");
    let over = paths
        .iter()
        .filter(|p| std::fs::metadata(p).expect("part").len() > 200_000)
        .count();
    assert_eq!(over, 1, "only the part holding the 300 KB image is larger");
    for (i, p) in paths.iter().enumerate() {
        PartsReader::check_part(p, &list, i).expect("each part alone");
    }
    let (c, _) = {
        let mut got = Vec::new();
        let c = Reader::read(
            PartsReader::new(paths.clone(), list.clone()).expect("parts"),
            |a, r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v)?;
                got.push((a.name.clone(), v));
                Ok(())
            },
        )
        .expect("valid");
        (c, got)
    };
    assert_eq!(c.releases.len(), 2);
    // Another export of the same content, split the same way, differs (its id): mixing
    // its first part in is refused.
    let (other, _) = split("c", "two");
    let mut mixed = paths.clone();
    mixed[0] = other[0].clone();
    let err = Reader::read(
        PartsReader::new(mixed, list.clone()).expect("parts"),
        |_, r| std::io::copy(r, &mut std::io::sink()).map(|_| ()),
    )
    .expect_err("mixed");
    assert!(err.to_string().contains("part 1"), "{err}");
    // A damaged last part.
    let last = paths.last().expect("last").clone();
    let mut bytes = std::fs::read(&last).expect("read");
    bytes[100] ^= 1;
    std::fs::write(&last, &bytes).expect("write");
    let err = PartsReader::check_part(&last, &list, paths.len() - 1).expect_err("damaged");
    assert!(err.to_string().contains("not the part"), "{err}");
    // A missing part.
    let err = PartsReader::new(paths[..paths.len() - 1].to_vec(), list).expect_err("missing");
    assert!(err.to_string().contains("parts"), "{err}");
}

/// A part list is read before its signature can be checked: it cannot name a file outside
/// its directory, and a part longer than listed is refused without reading it all.
#[test]
fn a_hostile_part_list_reads_nothing_outside_and_no_more_than_it_lists() {
    use accord_bundle::parts::{Part, PartList, PartsReader};
    let dir = tempfile::tempdir().expect("tmp");
    let list = |name: &str, size: u64| PartList {
        export: "x".into(),
        parts: vec![Part {
            name: name.into(),
            size,
            sha256: "00".repeat(32),
        }],
    };
    for bad in ["../etc/passwd", "/etc/passwd", "..", "a/b"] {
        let err = PartsReader::new(vec![dir.path().join(bad)], list(bad, 1)).expect_err(bad);
        assert!(err.to_string().contains("not a plain file name"), "{err}");
    }
    let long = dir.path().join("long.001");
    std::fs::write(&long, vec![0u8; 10_000]).expect("write");
    let mut r = PartsReader::new(vec![long], list("long.001", 100)).expect("reader");
    let mut sink = Vec::new();
    let err = r.read_to_end(&mut sink).expect_err("longer than listed");
    assert!(err.to_string().contains("part 1"), "{err}");
    assert!(
        sink.len() <= 101,
        "read {} bytes of a 100-byte part",
        sink.len()
    );
}
