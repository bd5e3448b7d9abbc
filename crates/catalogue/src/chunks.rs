//! Reading Automerge chunks before Automerge does, so what a peer's message will cost is
//! known and bounded before any of it is loaded (issue 12): the header of each chunk
//! (`magic | checksum | type | uLEB128 length | data`), and for a change chunk the number
//! of operations its columns encode. A run-length-encoded column can claim a billion
//! operations in a few bytes; Automerge would expand them all.

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

/// The number of operations a change chunk encodes, counted from its column encodings
/// without expanding them; refused past `cap` (or on anything malformed).
pub fn change_ops(chunk: &[u8], cap: u64) -> Result<u64, String> {
    let mut r = Reader(chunk);
    r.take(8)?;
    if r.byte()? != 1 {
        return Err("not an uncompressed change chunk".into());
    }
    let len = r.uleb()?;
    if usize::try_from(len).ok() != Some(r.0.len()) {
        return Err("change chunk length does not match its header".into());
    }
    let deps = r.uleb()?;
    r.take(deps.checked_mul(32).ok_or("too many dependencies")?)?;
    let actor = r.uleb()?;
    r.take(actor)?;
    r.uleb()?; // seq
    r.uleb()?; // start op
    r.sleb()?; // time
    let message = r.uleb()?;
    r.take(message)?;
    let others = r.uleb()?;
    for _ in 0..others {
        let n = r.uleb()?;
        r.take(n)?;
    }
    let ncols = r.uleb()?;
    let mut cols = Vec::new();
    for _ in 0..ncols {
        let spec = r.uleb()?;
        let len = r.uleb()?;
        cols.push((spec, len));
    }
    let mut ops = 0u64;
    for (spec, len) in cols {
        let data = r.take(len)?;
        if spec & 0b1000 != 0 {
            return Err("compressed columns in a change".into());
        }
        let rows = rows(spec & 0b111, data, cap)?;
        ops = ops.max(rows);
    }
    Ok(ops)
}

/// Rows a column encodes (type from the column spec's low 3 bits), refused past `cap`.
fn rows(col_type: u64, data: &[u8], cap: u64) -> Result<u64, String> {
    let mut r = Reader(data);
    let mut rows: u64 = 0;
    let add = |n: u64, rows: &mut u64| -> Result<(), String> {
        *rows = rows
            .checked_add(n)
            .filter(|t| *t <= cap)
            .ok_or_else(|| format!("a change encodes more than {cap} operations"))?;
        Ok(())
    };
    match col_type {
        // Value: raw bytes, as many as the metadata column says; no rows of its own.
        7 => return Ok(0),
        // Boolean: alternating run lengths.
        4 => {
            while !r.0.is_empty() {
                add(r.uleb()?, &mut rows)?;
            }
        }
        // Run-length encoded: group, actor, integer, delta, string, value metadata.
        t => {
            let mut group_total: u64 = 0;
            while !r.0.is_empty() {
                let count = r.sleb()?;
                let values = match count {
                    c if c > 0 => {
                        add(c as u64, &mut rows)?;
                        1
                    }
                    c if c < 0 => {
                        let n = c.unsigned_abs();
                        add(n, &mut rows)?;
                        n
                    }
                    _ => {
                        add(r.uleb()?, &mut rows)?;
                        0
                    }
                };
                for _ in 0..values {
                    match t {
                        3 => {
                            r.sleb()?;
                        }
                        5 => {
                            let n = r.uleb()?;
                            r.take(n)?;
                        }
                        _ => {
                            let v = r.uleb()?;
                            // A group's value is how many rows its grouped columns hold.
                            if t == 0 {
                                group_total = group_total
                                    .checked_add(v.saturating_mul(if count > 0 {
                                        count as u64
                                    } else {
                                        1
                                    }))
                                    .filter(|g| *g <= cap)
                                    .ok_or_else(|| {
                                        format!("a change encodes more than {cap} operations")
                                    })?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(rows)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.0.len())
            .ok_or("truncated change")?;
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn uleb(&mut self) -> Result<u64, String> {
        let (v, used) = uleb(self.0).ok_or("bad number in change")?;
        self.0 = &self.0[used..];
        Ok(v)
    }

    fn sleb(&mut self) -> Result<i64, String> {
        let mut v: i64 = 0;
        let mut shift = 0u32;
        for (i, byte) in self.0.iter().enumerate().take(10) {
            v |= i64::from(byte & 0x7f)
                .checked_shl(shift)
                .ok_or("bad number in change")?;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                self.0 = &self.0[i + 1..];
                return Ok(v);
            }
        }
        Err("bad number in change".into())
    }
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

    /// The counter agrees with Automerge on honest changes of every shape the catalogue
    /// writes (maps, text, lists, deletes, overwrites).
    #[test]
    fn counts_operations_like_automerge() {
        let mut doc = automerge::AutoCommit::new();
        let m = doc
            .put_object(automerge::ROOT, "m", automerge::ObjType::Map)
            .expect("map");
        doc.put(&m, "k", "v").expect("put");
        let t = doc
            .put_object(&m, "t", automerge::ObjType::Text)
            .expect("text");
        doc.splice_text(&t, 0, 0, &"héllo wörld ".repeat(50))
            .expect("splice");
        doc.commit();
        doc.splice_text(&t, 3, 40, "").expect("delete");
        doc.put(&m, "k", vec![1u8, 2, 3]).expect("overwrite");
        let l = doc
            .put_object(&m, "l", automerge::ObjType::List)
            .expect("list");
        for i in 0..100 {
            doc.insert(&l, i, i as i64).expect("insert");
        }
        doc.commit();
        for c in doc.get_changes(&[]) {
            assert_eq!(
                change_ops(c.raw_bytes(), 1_000_000).expect("counts"),
                c.len() as u64
            );
            assert!(change_ops(c.raw_bytes(), 10).is_err(), "cap not applied");
        }
    }
}
