//! What the writer publishes for readers: the durable tree size, the latest checkpoint,
//! a snapshot of the registry and whether writes have stopped.
//!
//! Readers never see an entry before it is durable: they read the store only up to the
//! size published here, which the writer advances after each successful flush.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::registry::Registry;

/// A signed checkpoint as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCheckpoint {
    pub tree_size: u64,
    pub note: String,
}

pub struct Shared {
    durable_size: watch::Sender<u64>,
    checkpoint: watch::Sender<PublishedCheckpoint>,
    registry: RwLock<Arc<Registry>>,
    failure: RwLock<Option<String>>,
}

impl Shared {
    pub fn new(durable_size: u64, checkpoint: PublishedCheckpoint, registry: Registry) -> Shared {
        Shared {
            durable_size: watch::Sender::new(durable_size),
            checkpoint: watch::Sender::new(checkpoint),
            registry: RwLock::new(Arc::new(registry)),
            failure: RwLock::new(None),
        }
    }

    pub fn durable_size(&self) -> u64 {
        *self.durable_size.borrow()
    }

    /// Notified each time the durable size grows.
    pub fn watch_size(&self) -> watch::Receiver<u64> {
        self.durable_size.subscribe()
    }

    pub fn checkpoint(&self) -> PublishedCheckpoint {
        self.checkpoint.borrow().clone()
    }

    /// Notified each time a new checkpoint is durable.
    pub fn watch_checkpoint(&self) -> watch::Receiver<PublishedCheckpoint> {
        self.checkpoint.subscribe()
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().expect("registry lock").clone()
    }

    /// Why writes stopped, if they did.
    pub fn failure(&self) -> Option<String> {
        self.failure.read().expect("failure lock").clone()
    }

    pub(super) fn publish_size(&self, size: u64) {
        self.durable_size.send_replace(size);
    }

    pub(super) fn publish_checkpoint(&self, tree_size: u64, note: String) {
        self.checkpoint
            .send_replace(PublishedCheckpoint { tree_size, note });
    }

    pub(super) fn publish_registry(&self, registry: Registry) {
        *self.registry.write().expect("registry lock") = Arc::new(registry);
    }

    pub(super) fn publish_failure(&self, reason: String) {
        *self.failure.write().expect("failure lock") = Some(reason);
    }
}
