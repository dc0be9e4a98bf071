//! The projector: follows the log's signed checkpoints, applies each new prefix to the
//! pure projection core, publishes it for queries, persists snapshots, and announces
//! service state changes.
//!
//! The published projection always reflects exactly a **checkpointed** prefix
//! `[0, tree_size)`, so every answer can name the signed note it was computed from. On
//! start it resumes from its snapshot (replaying only the entries after it) and rebuilds
//! from the log when the snapshot is missing, from another format, inconsistent, or not a
//! snapshot of this log's prefix (`serve --rebuild-projections` forces a rebuild).

pub mod feed;
mod snapshot_store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::clock::Clock;
use crate::entry;
use crate::log::Ledger;
use crate::projection::{Projection, State};
use snapshot_store::{SnapshotStore, StoredSnapshot};

/// State changes buffered for WatchStates consumers by default; one that falls further
/// behind is disconnected rather than slowing anyone down.
pub const DEFAULT_STATE_CHANGE_BUFFER: usize = 1024;
/// Entries read from the log per step while catching up.
const READ_CHUNK: u64 = 8192;
/// Threads reading and decoding the log during a replay (the applying thread is a third).
const DECODERS: usize = 2;

pub struct ProjectorConfig {
    /// The projection store lives in `data_dir/projections`.
    pub data_dir: PathBuf,
    /// Ignore any snapshot and rebuild from the log.
    pub rebuild: bool,
    /// How often the snapshot is rewritten while the log grows.
    pub snapshot_interval: Duration,
    /// Used only for "current state" (WatchStates, GetService): never for reports.
    pub clock: Arc<dyn Clock>,
    /// State changes a WatchStates consumer may fall behind before it is disconnected.
    pub state_change_buffer: usize,
}

/// The projection of one checkpointed prefix.
#[derive(Clone)]
pub struct Published {
    pub projection: Projection,
    pub tree_size: u64,
    /// The signed checkpoint note at `tree_size`.
    pub checkpoint: String,
    /// `received_at` of the prefix's last entry: where relative windows end.
    pub as_of: i64,
}

/// A service's current state changed.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub service_id: String,
    pub state: State,
    /// `None` for the first state seen.
    pub previous: Option<State>,
    /// The ledger time at which the change was seen.
    pub at: i64,
    pub tree_size: u64,
}

/// How the projector started: what tests and operators look at to see that a restart
/// resumed instead of replaying everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartReport {
    /// The tree size of the snapshot it resumed from, if any.
    pub resumed_from: Option<u64>,
    /// Entries applied from the log to catch up at start.
    pub replayed_entries: u64,
    /// Why a stored snapshot was not used, if one existed.
    pub rebuild_reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("projection store: {0}")]
    Store(String),
    #[error("reading the log: {0}")]
    Log(String),
}

pub struct Projections {
    ledger: Arc<Ledger>,
    published: RwLock<Published>,
    changes: broadcast::Sender<StateChange>,
    current_states: Mutex<HashMap<String, State>>,
    start_report: StartReport,
    store: SnapshotStore,
    clock: Arc<dyn Clock>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The last earlier prefix recomputed for a query (see [`Projections::earlier`]); its
    /// lock is held for the whole of a replay, so replays run one at a time.
    earlier: Arc<tokio::sync::Mutex<Option<Arc<Published>>>>,
    /// Entries replayed for earlier prefixes since the start.
    replayed_for_queries: Arc<AtomicU64>,
}

impl Projections {
    /// Loads or rebuilds the projection up to the latest checkpoint (blocking), then starts
    /// following the log. Must run inside a Tokio runtime.
    pub fn start(
        ledger: Arc<Ledger>,
        config: ProjectorConfig,
    ) -> Result<Arc<Projections>, ProjectorError> {
        let store = SnapshotStore::open(&config.data_dir.join("projections"))
            .map_err(ProjectorError::Store)?;
        let (mut published, start_report) = initial(&ledger, &store, config.rebuild)?;
        catch_up(&ledger, &mut published)?;
        let replayed = published.tree_size - start_report.resumed_from.unwrap_or(0);
        let start_report = StartReport {
            replayed_entries: replayed,
            ..start_report
        };
        tracing::info!(
            tree_size = published.tree_size,
            resumed_from = ?start_report.resumed_from,
            replayed_entries = replayed,
            rebuild_reason = ?start_report.rebuild_reason,
            "projections ready"
        );
        let (changes, _) = broadcast::channel(config.state_change_buffer.max(1));
        let (stop, stopped) = watch::channel(false);
        let projections = Arc::new(Projections {
            ledger,
            published: RwLock::new(published),
            changes,
            current_states: Mutex::new(HashMap::new()),
            start_report,
            store,
            clock: config.clock,
            stop,
            task: Mutex::new(None),
            earlier: Arc::default(),
            replayed_for_queries: Arc::default(),
        });
        projections.announce_state_changes();
        projections.save_snapshot();
        let task = tokio::spawn(follow(
            projections.clone(),
            stopped,
            config.snapshot_interval,
        ));
        *projections.task.lock().expect("task lock") = Some(task);
        Ok(projections)
    }

    /// The latest published projection. Hold the guard only while computing an answer.
    pub fn read(&self) -> RwLockReadGuard<'_, Published> {
        self.published.read().expect("projection lock")
    }

    pub fn start_report(&self) -> &StartReport {
        &self.start_report
    }

    /// The ledger's current time (for "current state" only).
    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Current state changes from now on, plus the current state of every service.
    pub fn subscribe(&self) -> (Vec<StateChange>, broadcast::Receiver<StateChange>) {
        let receiver = self.changes.subscribe();
        let published = self.read();
        let now = self.now();
        let current = published
            .projection
            .services()
            .map(|spec| StateChange {
                service_id: spec.service_id.to_string(),
                state: published.projection.current_state(&spec.service_id, now),
                previous: None,
                at: now,
                tree_size: published.tree_size,
            })
            .collect();
        (current, receiver)
    }

    /// Stops following the log and writes a final snapshot.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().expect("task lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.save_snapshot();
    }

    /// The projection of the earlier checkpointed prefix `tree_size`, recomputed from the
    /// log. The last one recomputed is kept: an audit asks about every service at one
    /// size, and the next audit's size is larger, so it replays only the entries between
    /// (extending the kept one in place) instead of the whole log. Replays run one at a
    /// time, off the async workers, and keep their turn until done even when the caller is
    /// gone (client away, timeout), so replays never pile up and the result waits for a
    /// retry. Memory: one more projection, briefly two while an answer still holds the
    /// previous one; after a failed replay nothing is kept.
    pub async fn earlier(&self, tree_size: u64) -> Result<Arc<Published>, crate::log::ReadError> {
        let mut kept = self.earlier.clone().lock_owned().await;
        if let Some(published) = kept.as_ref().filter(|p| p.tree_size == tree_size) {
            return Ok(published.clone());
        }
        let ledger = self.ledger.clone();
        let replayed = self.replayed_for_queries.clone();
        tokio::task::spawn_blocking(move || {
            let checkpoint = ledger.checkpoint_at(tree_size)?;
            let mut published = match kept.take() {
                Some(base) if base.tree_size < tree_size => base,
                _ => Arc::new(Published {
                    projection: Projection::new(feed::projection_config(
                        ledger.registry().genesis(),
                    )),
                    tree_size: 0,
                    checkpoint: String::new(),
                    as_of: i64::MIN,
                }),
            };
            let from = published.tree_size;
            // In place unless an answer still holds the kept one (then a copy).
            let extending = Arc::make_mut(&mut published);
            apply_range(&ledger, extending, tree_size)
                .map_err(|e| crate::log::ReadError::Storage(e.to_string()))?;
            extending.checkpoint = checkpoint.note;
            replayed.fetch_add(tree_size - from, Ordering::Relaxed);
            *kept = Some(published.clone());
            Ok(published)
        })
        .await
        .map_err(|e| crate::log::ReadError::Storage(format!("the replay task failed: {e}")))?
    }

    /// Entries replayed to answer queries about earlier prefixes since the start (for
    /// `/metrics`).
    pub fn replayed_for_queries(&self) -> u64 {
        self.replayed_for_queries.load(Ordering::Relaxed)
    }

    fn save_snapshot(&self) {
        let snapshot = {
            let published = self.read();
            let root = match self.ledger.root(published.tree_size) {
                Ok(root) => root,
                Err(error) => {
                    tracing::warn!(%error, "cannot save the projection snapshot");
                    return;
                }
            };
            StoredSnapshot {
                tree_size: published.tree_size,
                root,
                as_of: published.as_of,
                projection: published.projection.encode(),
            }
        };
        if let Err(error) = save(&self.store, &snapshot) {
            tracing::warn!(%error, "cannot save the projection snapshot; a restart will replay more of the log");
        }
    }

    /// Compares every service's current state with the last one announced.
    fn announce_state_changes(&self) {
        let now = self.now();
        let published = self.read();
        let mut current = self.current_states.lock().expect("states lock");
        for spec in published.projection.services() {
            let state = published.projection.current_state(&spec.service_id, now);
            let previous = current.insert(spec.service_id.to_string(), state);
            if previous != Some(state) {
                // No receivers is fine: nobody is watching.
                let _ = self.changes.send(StateChange {
                    service_id: spec.service_id.to_string(),
                    state,
                    previous,
                    at: now,
                    tree_size: published.tree_size,
                });
            }
        }
    }
}

/// Writes the snapshot (behind the `projector::snapshot` fail point).
fn save(store: &SnapshotStore, snapshot: &StoredSnapshot) -> Result<(), String> {
    fail::fail_point!("projector::snapshot", |_| Err(
        "failpoint projector::snapshot".to_string()
    ));
    store.save(snapshot)
}

/// The starting point: the stored snapshot when it is usable, else the empty projection.
fn initial(
    ledger: &Ledger,
    store: &SnapshotStore,
    rebuild: bool,
) -> Result<(Published, StartReport), ProjectorError> {
    let genesis = ledger.registry().genesis().clone();
    let empty = || Published {
        projection: Projection::new(feed::projection_config(&genesis)),
        tree_size: 0,
        checkpoint: String::new(),
        as_of: i64::MIN,
    };
    let fresh = |reason: Option<String>| {
        if let Some(reason) = &reason {
            tracing::warn!(%reason, "rebuilding projections from the log");
        }
        Ok((
            empty(),
            StartReport {
                resumed_from: None,
                replayed_entries: 0,
                rebuild_reason: reason,
            },
        ))
    };
    if rebuild {
        return fresh(Some("--rebuild-projections was given".into()));
    }
    let snapshot = match store.load() {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => return fresh(None),
        Err(reason) => return fresh(Some(reason)),
    };
    if snapshot.tree_size > ledger.checkpoint().tree_size {
        return fresh(Some(format!(
            "the snapshot is at tree size {} but the log's checkpoint is at {}",
            snapshot.tree_size,
            ledger.checkpoint().tree_size
        )));
    }
    match ledger.root(snapshot.tree_size) {
        Ok(root) if root == snapshot.root => {}
        _ => {
            return fresh(Some(
                "the snapshot was not taken from this log's prefix".into(),
            ))
        }
    }
    let projection = match Projection::decode(&snapshot.projection) {
        Ok(projection) => projection,
        Err(error) => return fresh(Some(format!("the snapshot cannot be used: {error}"))),
    };
    if projection.applied_index().map_or(0, |i| i + 1) != snapshot.tree_size
        || projection.config() != feed::projection_config(&genesis)
    {
        return fresh(Some(
            "the snapshot disagrees with its own tree size or the genesis".into(),
        ));
    }
    let checkpoint = ledger
        .checkpoint_at(snapshot.tree_size)
        .map(|c| c.note)
        .unwrap_or_default();
    Ok((
        Published {
            projection,
            tree_size: snapshot.tree_size,
            checkpoint,
            as_of: snapshot.as_of,
        },
        StartReport {
            resumed_from: Some(snapshot.tree_size),
            replayed_entries: 0,
            rebuild_reason: None,
        },
    ))
}

/// Applies everything up to the latest checkpoint.
fn catch_up(ledger: &Ledger, published: &mut Published) -> Result<(), ProjectorError> {
    let checkpoint = ledger.checkpoint();
    if checkpoint.tree_size > published.tree_size {
        apply_range(ledger, published, checkpoint.tree_size)?;
        published.checkpoint = checkpoint.note;
    }
    Ok(())
}

/// Applies entries `[published.tree_size, until)` and advances `tree_size` and `as_of`.
///
/// Reading and decoding run on [`DECODERS`] threads, each taking every other chunk and
/// working ahead of the applying thread, which takes the chunks back in order.
fn apply_range(
    ledger: &Ledger,
    published: &mut Published,
    until: u64,
) -> Result<(), ProjectorError> {
    let from = published.tree_size;
    let chunk_count = (until - from).div_ceil(READ_CHUNK);
    std::thread::scope(|scope| {
        let mut receivers = Vec::with_capacity(DECODERS);
        for decoder in 0..DECODERS as u64 {
            let (chunks, decoded_chunks) = std::sync::mpsc::sync_channel::<
                Result<Vec<entry::ProjectionEntry>, ProjectorError>,
            >(2);
            receivers.push(decoded_chunks);
            scope.spawn(move || {
                for chunk in (decoder..chunk_count).step_by(DECODERS) {
                    let start = from + chunk * READ_CHUNK;
                    let end = until.min(start + READ_CHUNK);
                    let decoded = decode_range(ledger, start, end);
                    let failed = decoded.is_err();
                    if chunks.send(decoded).is_err() || failed {
                        return;
                    }
                }
            });
        }
        for chunk in 0..chunk_count {
            let decoded = receivers[(chunk % DECODERS as u64) as usize]
                .recv()
                .map_err(|_| ProjectorError::Log("a log reader stopped early".into()))?;
            for entry in decoded? {
                published.as_of = published.as_of.max(entry.received_at());
                feed::apply_projection_entry(&mut published.projection, entry);
                published.tree_size += 1;
            }
        }
        Ok(())
    })?;
    if published.tree_size != until {
        return Err(ProjectorError::Log(format!(
            "expected entries up to {until}, read up to {}",
            published.tree_size
        )));
    }
    Ok(())
}

fn decode_range(
    ledger: &Ledger,
    start: u64,
    end: u64,
) -> Result<Vec<entry::ProjectionEntry>, ProjectorError> {
    let mut decoded = Vec::with_capacity((end - start) as usize);
    for item in ledger
        .entries(start..end)
        .map_err(|e| ProjectorError::Log(e.to_string()))?
    {
        let (index, bytes) = item.map_err(|e| ProjectorError::Log(e.to_string()))?;
        decoded.push(
            entry::decode_for_projection(bytes)
                .map_err(|e| ProjectorError::Log(format!("entry {index}: {e}")))?,
        );
    }
    Ok(decoded)
}

/// Follows new checkpoints until stopped; announces state changes every second (states
/// also change with time alone, when observations go stale) and saves snapshots.
async fn follow(
    projections: Arc<Projections>,
    mut stopped: watch::Receiver<bool>,
    snapshot_interval: Duration,
) {
    let mut checkpoints = projections.ledger.watch_checkpoint();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_snapshot = Instant::now();
    let mut snapshot_size = projections.read().tree_size;
    loop {
        tokio::select! {
            changed = checkpoints.changed() => {
                if changed.is_err() {
                    return;
                }
                let checkpoint = checkpoints.borrow_and_update().clone();
                projections.clone().advance(checkpoint).await;
            }
            _ = ticker.tick() => {
                // Also retries a prefix that failed to apply.
                projections.clone().advance(projections.ledger.checkpoint()).await;
                projections.announce_state_changes();
                let tree_size = projections.read().tree_size;
                if tree_size > snapshot_size && last_snapshot.elapsed() >= snapshot_interval {
                    let worker = projections.clone();
                    let _ = tokio::task::spawn_blocking(move || worker.save_snapshot()).await;
                    snapshot_size = tree_size;
                    last_snapshot = Instant::now();
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

impl Projections {
    /// Applies up to `checkpoint` (off the async workers) and announces what changed.
    async fn advance(self: Arc<Self>, checkpoint: crate::log::PublishedCheckpoint) {
        if checkpoint.tree_size <= self.read().tree_size {
            return;
        }
        let worker = self.clone();
        let advanced = tokio::task::spawn_blocking(move || {
            worker.advance_to(checkpoint.tree_size, checkpoint.note)
        })
        .await;
        match advanced {
            Ok(Ok(())) => self.announce_state_changes(),
            Ok(Err(error)) => {
                tracing::error!(%error, "the projector cannot apply the log; retrying")
            }
            Err(error) => tracing::error!(%error, "the projector task failed"),
        }
    }

    /// Reads and decodes the new entries outside the lock, then applies them under it, so
    /// readers always see a whole checkpointed prefix.
    fn advance_to(&self, tree_size: u64, note: String) -> Result<(), ProjectorError> {
        let from = self.read().tree_size;
        if tree_size <= from {
            return Ok(());
        }
        let decoded = decode_range(&self.ledger, from, tree_size)?;
        // Before the lock: a failure here leaves the published prefix whole, and the next
        // tick tries again.
        fail::fail_point!("projector::apply", |_| Err(ProjectorError::Log(
            "failpoint projector::apply".into()
        )));
        let mut published = self.published.write().expect("projection lock");
        for entry in decoded {
            published.as_of = published.as_of.max(entry.received_at());
            feed::apply_projection_entry(&mut published.projection, entry);
        }
        published.tree_size = tree_size;
        published.checkpoint = note;
        Ok(())
    }
}
