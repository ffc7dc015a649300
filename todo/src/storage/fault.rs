//! A fault-injecting wrapper around any backend: extra latency, a failure rate,
//! a full disk, failures limited to some lists; changeable live for tests and experiments.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{ListWrite, Storage, StorageError};
use crate::domain::port::{Queued, QueuedWrites};
use crate::domain::{ListName, TodoList};

/// What to inject.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Added to every operation.
    pub latency: Duration,
    /// A random extra delay up to this much.
    pub jitter: Duration,
    /// Probability (0 to 1) that an operation fails.
    pub error_rate: f64,
    /// Every store fails as if the disk were full.
    pub out_of_space: bool,
    /// When set, faults hit only these lists.
    pub fail_lists: Option<HashSet<ListName>>,
}

struct State {
    config: FaultConfig,
    rng: StdRng,
}

/// Changes a [`FaultyStorage`]'s faults while it runs.
#[derive(Clone)]
pub struct FaultHandle {
    state: Arc<Mutex<State>>,
    injected: Arc<AtomicU64>,
}

impl FaultHandle {
    /// Replaces the fault config.
    pub fn set(&self, config: FaultConfig) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).config = config;
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.set(FaultConfig::default());
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }
}

/// Wraps a backend and injects faults.
pub struct FaultyStorage<S> {
    inner: S,
    handle: FaultHandle,
}

impl<S: Storage> FaultyStorage<S> {
    /// Wraps `inner`; the seed makes failures repeatable.
    pub fn new(inner: S, config: FaultConfig, seed: u64) -> (Self, FaultHandle) {
        let handle = FaultHandle {
            state: Arc::new(Mutex::new(State {
                config,
                rng: StdRng::seed_from_u64(seed),
            })),
            injected: Arc::new(AtomicU64::new(0)),
        };
        (
            FaultyStorage {
                inner,
                handle: handle.clone(),
            },
            handle,
        )
    }

    /// Whether no fault (nor delay) is set.
    fn faultless(&self) -> bool {
        let st = self.handle.state.lock().unwrap_or_else(|e| e.into_inner());
        st.config == FaultConfig::default()
    }

    /// Decides this operation's delay and fault.
    fn roll(&self, name: &ListName, storing: bool) -> (Duration, Option<StorageError>) {
        let mut st = self.handle.state.lock().unwrap_or_else(|e| e.into_inner());
        let jitter = if st.config.jitter.is_zero() {
            Duration::ZERO
        } else {
            let max = st.config.jitter.as_nanos() as u64;
            Duration::from_nanos(st.rng.gen_range(0..=max))
        };
        let delay = st.config.latency + jitter;
        let targeted = st
            .config
            .fail_lists
            .as_ref()
            .is_none_or(|set| set.contains(name));
        let fault = if !targeted {
            None
        } else if storing && st.config.out_of_space {
            Some(StorageError::OutOfSpace { list: name.clone() })
        } else if st.config.error_rate > 0.0 && {
            let rate = st.config.error_rate.min(1.0);
            st.rng.gen_bool(rate)
        } {
            Some(StorageError::Injected {
                list: name.clone(),
                what: "injected I/O failure".into(),
            })
        } else {
            None
        };
        if fault.is_some() {
            self.handle.injected.fetch_add(1, Ordering::Relaxed);
        }
        (delay, fault)
    }
}

#[async_trait]
impl<S: Storage> Storage for FaultyStorage<S> {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        let (delay, fault) = self.roll(name, false);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Some(e) => Err(e),
            None => self.inner.load(name).await,
        }
    }

    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
        let (delay, fault) = self.roll(name, true);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Some(e) => Err(e),
            None => self.inner.store(name, list).await,
        }
    }

    /// Rolls a fault per list; the lists spared go to the inner backend as one
    /// batch, after the longest delay rolled.
    async fn store_batch(&self, writes: &[ListWrite]) -> Vec<Result<(), StorageError>> {
        let mut delay = Duration::ZERO;
        let mut out: Vec<Option<Result<(), StorageError>>> = Vec::with_capacity(writes.len());
        let mut spared = Vec::new();
        for w in writes {
            let (d, fault) = self.roll(&w.name, true);
            delay = delay.max(d);
            match fault {
                Some(e) => out.push(Some(Err(e))),
                None => {
                    out.push(None);
                    spared.push(w.clone());
                }
            }
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut inner = if spared.is_empty() {
            Vec::new()
        } else {
            self.inner.store_batch(&spared).await
        }
        .into_iter();
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    inner.next().unwrap_or_else(|| {
                        Err(StorageError::Io {
                            list: None,
                            source: std::io::Error::other("the backend gave no result"),
                        })
                    })
                })
            })
            .collect()
    }

    /// Forwarded to the inner backend while no fault is set (then nothing is
    /// rolled); with faults set, handed back so each write is rolled in `store_batch`.
    fn queue_batch(&self, batch: QueuedWrites) -> Result<Queued, QueuedWrites> {
        if self.faultless() {
            self.inner.queue_batch(batch)
        } else {
            Err(batch)
        }
    }

    /// The inner backend's answer while no fault is set (a load could fail then).
    fn surely_absent(&self, name: &ListName) -> bool {
        self.faultless() && self.inner.surely_absent(name)
    }

    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
        let (delay, fault) = self.roll(name, false);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Some(e) => Err(e),
            None => self.inner.delete_list(name).await,
        }
    }

    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        self.inner.list_names().await
    }
    async fn purge_receipts(&self, before_ms: i64) -> Result<u64, StorageError> {
        self.inner.purge_receipts(before_ms).await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}
