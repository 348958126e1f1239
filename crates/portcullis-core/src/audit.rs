//! The tamper-evident audit chain.
//!
//! Each entry's hash covers the previous entry's hash and the entry's own fields,
//! length-prefixed so no two field lists hash alike. Changing, deleting or inserting
//! a row breaks the chain from that row on; the verifier names the first bad entry.

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An action to record; the store assigns id and hashes.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub actor: String,
    pub action: String,
    pub target: String,
    /// Compact JSON text; hashed exactly as stored.
    pub details: String,
    pub client_addr: Option<String>,
}

impl AuditDraft {
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            details: "{}".to_owned(),
            client_addr: None,
        }
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details.to_string();
        self
    }

    pub fn from_addr(mut self, addr: Option<String>) -> Self {
        self.client_addr = addr;
        self
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub client_addr: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

fn feed(hasher: &mut Sha256, field: &[u8]) {
    hasher.update((field.len() as u64).to_be_bytes());
    hasher.update(field);
}

/// Hash of one entry given its predecessor's hash.
pub fn entry_hash(prev_hash: &str, at_ms: i64, draft: &AuditDraft) -> String {
    let mut hasher = Sha256::new();
    feed(&mut hasher, prev_hash.as_bytes());
    feed(&mut hasher, &at_ms.to_be_bytes());
    feed(&mut hasher, draft.actor.as_bytes());
    feed(&mut hasher, draft.action.as_bytes());
    feed(&mut hasher, draft.target.as_bytes());
    feed(&mut hasher, draft.details.as_bytes());
    feed(
        &mut hasher,
        draft.client_addr.as_deref().unwrap_or("").as_bytes(),
    );
    hex::encode(hasher.finalize())
}

/// One stored row as the verifier sees it (details as the stored text).
#[derive(Debug, Clone)]
pub struct StoredAuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub draft: AuditDraft,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ChainBreak {
    /// Id of the first entry that does not verify.
    pub entry_id: i64,
    pub reason: String,
}

/// Walks the chain in id order, page by page.
#[derive(Debug)]
pub struct ChainVerifier {
    prev_hash: String,
    checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            prev_hash: GENESIS.to_owned(),
            checked: 0,
        }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, row: &StoredAuditRow) -> Result<(), ChainBreak> {
        if row.prev_hash != self.prev_hash {
            return Err(ChainBreak {
                entry_id: row.id,
                reason: "prev_hash does not match the previous entry (an entry was removed, inserted or changed)".into(),
            });
        }
        if entry_hash(&row.prev_hash, row.at_ms, &row.draft) != row.hash {
            return Err(ChainBreak {
                entry_id: row.id,
                reason: "entry content does not match its hash (the entry was modified)".into(),
            });
        }
        self.prev_hash.clone_from(&row.hash);
        self.checked += 1;
        Ok(())
    }

    pub fn checked(&self) -> u64 {
        self.checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<StoredAuditRow> {
        let mut prev = GENESIS.to_owned();
        (0..n)
            .map(|i| {
                let draft = AuditDraft::new("admin", "group.create", format!("group:{i}"));
                let hash = entry_hash(&prev, i as i64, &draft);
                let row = StoredAuditRow {
                    id: i as i64 + 1,
                    at_ms: i as i64,
                    draft,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn verify(rows: &[StoredAuditRow]) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::default();
        for row in rows {
            v.check(row)?;
        }
        Ok(v.checked())
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn modified_entry_is_named() {
        let mut rows = chain(5);
        rows[2].draft.target = "group:evil".into();
        assert_eq!(verify(&rows).map_err(|b| b.entry_id), Err(3));
    }

    #[test]
    fn removed_entry_breaks_the_next() {
        let mut rows = chain(5);
        rows.remove(1);
        assert_eq!(verify(&rows).map_err(|b| b.entry_id), Err(3));
    }

    #[test]
    fn fields_cannot_slide_between_each_other() {
        let a = AuditDraft::new("ab", "c", "d");
        let b = AuditDraft::new("a", "bc", "d");
        assert_ne!(entry_hash(GENESIS, 0, &a), entry_hash(GENESIS, 0, &b));
    }
}
