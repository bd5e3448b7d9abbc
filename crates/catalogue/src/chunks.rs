//! Splitting an Automerge chunk list into chunks before anything is parsed: the header of
//! each chunk is read here (`magic | checksum | type | uLEB128 length | data`), so what a
//! peer's message will cost is known, and bounded, before Automerge sees it.

/// The chunk types Automerge writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Document,
    Change,
    CompressedChange,
}

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// The chunks in `bytes`, in order, each with its kind; refuses anything that is not a
/// whole number of well-formed chunk headers with their data.
pub fn split(mut bytes: &[u8]) -> Result<Vec<(Kind, &[u8])>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 9 || bytes[..4] != MAGIC {
            return Err("not an Automerge chunk (bad magic bytes)".into());
        }
        let kind = match bytes[8] {
            0 => Kind::Document,
            1 => Kind::Change,
            2 => Kind::CompressedChange,
            other => return Err(format!("unknown Automerge chunk type {other}")),
        };
        let (len, used) = uleb(&bytes[9..]).ok_or("bad Automerge chunk length")?;
        let len = usize::try_from(len).map_err(|_| "Automerge chunk length overflows")?;
        let end = 9usize
            .checked_add(used)
            .and_then(|h| h.checked_add(len))
            .filter(|e| *e <= bytes.len())
            .ok_or("truncated Automerge chunk")?;
        out.push((kind, &bytes[..end]));
        bytes = &bytes[end..];
    }
    Ok(out)
}

fn uleb(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    #[test]
    fn splits_concatenated_changes_and_refuses_damage() {
        let mut doc = automerge::AutoCommit::new();
        doc.put(automerge::ROOT, "a", 1).expect("put");
        doc.commit();
        doc.put(automerge::ROOT, "b", 2).expect("put");
        doc.commit();
        let changes = doc.get_changes(&[]);
        let mut joined = Vec::new();
        for c in &changes {
            joined.extend_from_slice(c.raw_bytes());
        }
        let parts = split(&joined).expect("splits");
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|(k, _)| *k == Kind::Change));
        assert_eq!(parts[1].1, changes[1].raw_bytes());
        for cut in 1..joined.len() {
            if cut != changes[0].raw_bytes().len() {
                assert!(split(&joined[..cut]).is_err(), "cut at {cut} accepted");
            }
        }
        let doc_bytes = doc.save();
        assert_eq!(split(&doc_bytes).expect("doc")[0].0, Kind::Document);
        assert!(split(b"garbage!!!").is_err());
    }
}
