//! Forged catalogue changes: raw Automerge operations by a listed node key, properly
//! signed, bypassing every local check (`Replica::edit` would refuse most of them).

use accord_catalogue::History;
use accord_catalogue::signing;
use accord_catalogue::wire::WireMessage;
use accord_trust::SecretKey;
use automerge::sync::{ChunkList, Message, MessageVersion};
use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{Automerge, AutomergeError, Change, ObjId, ObjType, ROOT, ReadDoc, Value};

/// A node key that writes whatever it likes.
#[derive(Debug)]
pub struct Forger {
    pub key: SecretKey,
    /// Changes made so far: each gets its own actor (ADR 0008), even two on one base.
    made: std::cell::Cell<u64>,
}

impl Forger {
    pub fn new(key: SecretKey) -> Forger {
        Forger {
            key,
            made: std::cell::Cell::new(0),
        }
    }

    /// One change made with raw Automerge on top of `base` (typically the target's own
    /// document, so every dependency is one the target holds), written as this key's actor.
    pub fn change(
        &self,
        base: &Automerge,
        time: i64,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    ) -> Change {
        let mut doc = base.fork();
        let n = self.made.get();
        self.made.set(n + 1);
        let nonce = signing::change_nonce(&base.get_heads(), time, &format!("forged {n}"));
        doc.set_actor(signing::change_actor(self.key.public(), nonce));
        let hash = doc
            .transact_with::<_, _, AutomergeError, _>(
                |_| CommitOptions::default().with_time(time),
                f,
            )
            .unwrap_or_else(|e| panic!("forging failed: {:?}", e.error))
            .hash
            .unwrap_or_else(|| panic!("the forged transaction wrote nothing"));
        doc.get_change_by_hash(&hash)
            .unwrap_or_else(|| panic!("forged change missing"))
    }

    /// A sync message carrying `changes` (in order), signed over the last one by this key.
    pub fn message(&self, heads: Vec<automerge::ChangeHash>, changes: &[Change]) -> Vec<u8> {
        let signatures = changes
            .last()
            .map(|c| vec![signing::sign(&self.key, &c.hash())])
            .unwrap_or_default();
        let msg = Message {
            heads,
            need: Vec::new(),
            have: Vec::new(),
            changes: ChunkList::from(
                changes
                    .iter()
                    .map(|c| c.raw_bytes().to_vec())
                    .collect::<Vec<_>>(),
            ),
            flags: None,
            version: MessageVersion::V1,
        };
        WireMessage {
            sync: msg.encode(),
            signatures,
        }
        .encode()
    }
}

/// A top-level map of the document.
pub fn top(tx: &Transaction<'_>, key: &str) -> ObjId {
    match tx.get(ROOT, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => id,
        other => panic!("no map {key}: {other:?}"),
    }
}

/// A history map of the document.
pub fn history(tx: &Transaction<'_>, map: History) -> ObjId {
    top(tx, map.key())
}

/// The first key of a history map whose value satisfies `pick`.
pub fn entry_where(doc: &Automerge, map: History, pick: impl Fn(&[u8]) -> bool) -> Option<String> {
    let obj = match doc.get(ROOT, map.key()) {
        Ok(Some((Value::Object(ObjType::Map), id))) => id,
        _ => return None,
    };
    doc.keys(&obj)
        .find(|k| accord_catalogue::schema::history_value(doc, map, k).is_some_and(|v| pick(&v)))
}

/// Hex SHA-256 of a value: the key an honest writer files it under.
pub fn key_of(value: &[u8]) -> String {
    accord_catalogue::records::entry_key(value)
}

/// Every forbidden write this suite knows, each as a forging function on a document that
/// holds at least one release statement, approval, recall and promotion note.
pub fn forbidden_writes() -> Vec<(&'static str, &'static str, ForgeFn)> {
    vec![
        (
            "delete a recall",
            "append-only",
            Box::new(|doc, tx| {
                let k = entry_where(doc, History::Statements, |v| {
                    String::from_utf8_lossy(v).contains("recall/v1")
                })
                .expect("a recall");
                let m = history(tx, History::Statements);
                tx.delete(&m, k.as_str())
            }),
        ),
        (
            "delete an approval",
            "append-only",
            Box::new(|doc, tx| {
                let k = entry_where(doc, History::Signatures, |_| true).expect("an approval");
                let m = history(tx, History::Signatures);
                tx.delete(&m, k.as_str())
            }),
        ),
        (
            "replace a release statement's bytes",
            "append-only",
            Box::new(|doc, tx| {
                let k = entry_where(doc, History::Statements, |v| {
                    String::from_utf8_lossy(v).contains("release/v1")
                })
                .expect("a release");
                let m = history(tx, History::Statements);
                tx.put(
                    &m,
                    k.as_str(),
                    automerge::ScalarValue::Bytes(b"{}".to_vec()),
                )
            }),
        ),
        (
            "overwrite another jurisdiction's note",
            "append-only",
            Box::new(|doc, tx| {
                let k = entry_where(doc, History::Notes, |_| true).expect("a note");
                let m = history(tx, History::Notes);
                tx.put(
                    &m,
                    k.as_str(),
                    automerge::ScalarValue::Bytes(b"{}".to_vec()),
                )
            }),
        ),
        (
            "file bytes under a key that is not their hash",
            "not under its SHA-256",
            Box::new(|_, tx| {
                let m = history(tx, History::Statements);
                tx.put(
                    &m,
                    "00".repeat(32).as_str(),
                    automerge::ScalarValue::Bytes(b"{}".to_vec()),
                )
            }),
        ),
        (
            "write a jurisdiction",
            "only the genesis writes",
            Box::new(|_, tx| {
                let j = top(tx, "jurisdictions");
                tx.put_object(&j, "xx", ObjType::Map).map(|_| ())
            }),
        ),
        (
            "add a top-level map",
            "only the genesis writes",
            Box::new(|_, tx| tx.put_object(ROOT, "shadow", ObjType::Map).map(|_| ())),
        ),
        (
            "replace the statements map",
            "only the genesis writes",
            Box::new(|_, tx| tx.put_object(ROOT, "statements", ObjType::Map).map(|_| ())),
        ),
        (
            "delete a capability",
            "only the genesis writes",
            Box::new(|_, tx| {
                let c = top(tx, "capabilities");
                tx.delete(&c, "CAP-B01")
            }),
        ),
        (
            "set an unknown status",
            "sets CAP-B01.status",
            Box::new(|_, tx| {
                let c = top(tx, "capabilities");
                let b01 = match tx.get(&c, "CAP-B01") {
                    Ok(Some((_, id))) => id,
                    other => panic!("{other:?}"),
                };
                tx.put(&b01, "status", "<script>alert(1)</script>")
            }),
        ),
    ]
}

/// A forging function: reads the target's document, writes through the transaction.
pub type ForgeFn = Box<dyn Fn(&Automerge, &mut Transaction<'_>) -> Result<(), AutomergeError>>;
