//! The durable outbox: its own sled database (`DATA_DIR/alerts`) with two trees.
//!
//! - `open`: the alerts notified as firing and not yet as resolved, by `service_id ‖ 0 ‖
//!   rule` → the alert as JSON and the prefix it was computed from. What the notifier
//!   compares each evaluation with, so a restart neither repeats nor forgets a transition.
//! - `outbox`: one entry per (transition, receiver), by `receiver ‖ 0 ‖ seq` (seq u64 BE,
//!   increasing) → the body to send, its `webhook-id`, attempts and the next attempt time.
//!
//! A transition changes both trees in one sled transaction, flushed before anything is
//! sent; an entry leaves the outbox only once its receiver answered 2xx (or it expired).

use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

/// An alert notified as firing: what a resolution and an Alertmanager re-post need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAlert {
    /// The alert as [`super::notification::alert_json`] wrote it when it fired.
    pub alert: serde_json::Value,
    pub tree_size: u64,
    pub checkpoint: String,
}

/// An open alert's key: (service_id, rule name).
pub type AlertKey = (String, String);

/// One notification for one receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub receiver: String,
    pub webhook_id: String,
    /// The exact body to send (fixed when the transition was written).
    pub body: String,
    /// Wall-clock milliseconds: when it was written, and when it may next be attempted.
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub attempts: u32,
}

/// A change to write in one transaction: open alerts set or removed, entries added.
#[derive(Debug, Default)]
pub struct Batch {
    pub opened: Vec<(String, String, OpenAlert)>,
    pub closed: Vec<(String, String)>,
    pub entries: Vec<OutboxEntry>,
}

#[derive(Debug, thiserror::Error)]
#[error("alert outbox: {0}")]
pub struct OutboxError(String);

impl OutboxError {
    pub(super) fn from_message(message: String) -> OutboxError {
        OutboxError(message)
    }
}

pub struct Outbox {
    db: sled::Db,
    open: sled::Tree,
    outbox: sled::Tree,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Outbox, OutboxError> {
        // Small: the outbox holds what is undelivered, normally nothing. Opened as the log's
        // store is, so a crash in the middle of a sled snapshot does not stop the start.
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(4 * 1024 * 1024);
        let db = crate::log::open_sled(path, config)
            .map_err(|e| OutboxError(format!("{}: {e}", path.display())))?;
        let open = db.open_tree("open").map_err(error)?;
        let outbox = db.open_tree("outbox").map_err(error)?;
        Ok(Outbox { db, open, outbox })
    }

    /// Every open alert, by (service_id, rule).
    pub fn open_alerts(&self) -> Result<Vec<(AlertKey, OpenAlert)>, OutboxError> {
        self.open
            .iter()
            .map(|item| {
                let (key, value) = item.map_err(error)?;
                let key = String::from_utf8_lossy(&key).into_owned();
                let (service_id, rule) = key.split_once('\0').unwrap_or((&key, ""));
                let alert = serde_json::from_slice(&value).map_err(error)?;
                Ok(((service_id.to_owned(), rule.to_owned()), alert))
            })
            .collect()
    }

    /// Writes `batch` atomically and flushes it to disk.
    pub fn write(&self, batch: Batch) -> Result<(), OutboxError> {
        let mut entries = Vec::with_capacity(batch.entries.len());
        for entry in &batch.entries {
            let seq = self.db.generate_id().map_err(error)?;
            entries.push((
                entry_key(&entry.receiver, seq),
                serde_json::to_vec(entry).map_err(error)?,
            ));
        }
        let mut opened = Vec::with_capacity(batch.opened.len());
        for (service_id, rule, alert) in &batch.opened {
            opened.push((
                open_key(service_id, rule),
                serde_json::to_vec(alert).map_err(error)?,
            ));
        }
        (&self.open, &self.outbox)
            .transaction(|(open, outbox)| {
                for (service_id, rule) in &batch.closed {
                    open.remove(open_key(service_id, rule))?;
                }
                for (key, value) in &opened {
                    open.insert(key.as_slice(), value.as_slice())?;
                }
                for (key, value) in &entries {
                    outbox.insert(key.as_slice(), value.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| OutboxError(format!("{e:?}")))?;
        self.db.flush().map_err(error)?;
        Ok(())
    }

    /// The receiver's entries in the order they were written.
    pub fn entries(&self, receiver: &str) -> Result<Vec<(Vec<u8>, OutboxEntry)>, OutboxError> {
        let mut prefix = receiver.as_bytes().to_vec();
        prefix.push(0);
        self.outbox
            .scan_prefix(prefix)
            .map(|item| {
                let (key, value) = item.map_err(error)?;
                Ok((key.to_vec(), serde_json::from_slice(&value).map_err(error)?))
            })
            .collect()
    }

    /// Replaces an entry after a failed attempt.
    pub fn reschedule(&self, key: &[u8], entry: &OutboxEntry) -> Result<(), OutboxError> {
        self.outbox
            .insert(key, serde_json::to_vec(entry).map_err(error)?)
            .map_err(error)?;
        self.db.flush().map_err(error)?;
        Ok(())
    }

    /// Removes a delivered or expired entry.
    pub fn remove(&self, key: &[u8]) -> Result<(), OutboxError> {
        self.outbox.remove(key).map_err(error)?;
        self.db.flush().map_err(error)?;
        Ok(())
    }

    /// Entries waiting, and the `created_at` of the oldest.
    pub fn depth(&self) -> (usize, Option<i64>) {
        let mut oldest: Option<i64> = None;
        let mut count = 0;
        for (_, value) in self.outbox.iter().flatten() {
            count += 1;
            if let Ok(entry) = serde_json::from_slice::<OutboxEntry>(&value) {
                oldest = Some(oldest.map_or(entry.created_at, |o| o.min(entry.created_at)));
            }
        }
        (count, oldest)
    }
}

fn open_key(service_id: &str, rule: &str) -> Vec<u8> {
    let mut key = service_id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(rule.as_bytes());
    key
}

fn entry_key(receiver: &str, seq: u64) -> Vec<u8> {
    let mut key = receiver.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn error(e: impl std::fmt::Display) -> OutboxError {
    OutboxError(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(receiver: &str, id: &str) -> OutboxEntry {
        OutboxEntry {
            receiver: receiver.into(),
            webhook_id: id.into(),
            body: "{}".into(),
            created_at: 5,
            next_attempt_at: 5,
            attempts: 0,
        }
    }

    #[test]
    fn a_batch_survives_reopening_and_entries_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let outbox = Outbox::open(dir.path()).unwrap();
            outbox
                .write(Batch {
                    opened: vec![(
                        "tax".into(),
                        "outage".into(),
                        OpenAlert {
                            alert: serde_json::json!({"alert": "outage"}),
                            tree_size: 3,
                            checkpoint: "note".into(),
                        },
                    )],
                    closed: vec![],
                    entries: vec![
                        entry("a", "msg_1"),
                        entry("b", "msg_1"),
                        entry("a", "msg_2"),
                    ],
                })
                .unwrap();
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        let ids: Vec<String> = outbox
            .entries("a")
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.webhook_id)
            .collect();
        assert_eq!(ids, ["msg_1", "msg_2"]);
        assert_eq!(outbox.depth(), (3, Some(5)));
        assert_eq!(
            outbox.open_alerts().unwrap()[0].0,
            ("tax".into(), "outage".into())
        );
        let (key, _) = outbox.entries("b").unwrap().remove(0);
        outbox.remove(&key).unwrap();
        outbox
            .write(Batch {
                closed: vec![("tax".into(), "outage".into())],
                ..Batch::default()
            })
            .unwrap();
        assert!(outbox.open_alerts().unwrap().is_empty());
        assert_eq!(outbox.depth().0, 2);
    }
}
