//! `Node`: one member of a cluster. It keeps the leases it holds (on its own
//! monotonic clock, see [`HeldLease`]), the coordinator's latest shard table for
//! routing, and runs the keeper task that heartbeats, renews, claims the shards
//! rendezvous hashing gives it, hands off the ones a live peer should own, and stops
//! the list servers of every shard it stops serving.
//!
//! One keeper tick, every `renew_every` (sooner when a store was fenced or a router
//! asks): heartbeat; renew every held lease (the clock is read before sending, so a
//! lease is never believed longer than the database grants it); drop leases that
//! could not be renewed in time; read members and leases; claim each free shard whose
//! preferred owner among live members (heartbeat within the lease ttl) is this node;
//! release each held shard whose preferred owner is another live member, after
//! stopping its list servers with their stores drained. Every tick's database work
//! is bounded by the backend's operation timeout; a failing database only delays
//! renewals, and the node stops serving when its leases run out.
//!
//! The node's state and its keeper stay in one file (625 lines): every phase of a
//! tick reads and changes the held leases under the same lock, and the order of the
//! phases is the protocol `cluster_protocol` tests check; the pure rules they apply
//! (leases, shards, fences) are already in their own files.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use super::lease::{Epoch, HeldLease, LeaseTerms, NodeTime};
use super::metrics::{CLAIMS, HANDOFFS, LEASES_HELD, LEASES_LOST, TAKEOVERS};
use super::port::{ClusterStore, LeaseRow, MemberRow};
use super::shard::{NodeId, ShardId, ShardMap};
use crate::domain::{ListName, TodoSystem};

/// What a node is: its id, where peers reach it, the shard count and lease terms.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// This node's id (unique in the cluster).
    pub id: NodeId,
    /// Where peers reach its HTTP API, e.g. `http://127.0.0.1:8081`.
    pub addr: String,
    /// How lists map to shards (the same on every node).
    pub shards: ShardMap,
    /// Lease length, renewal period and safety margin.
    pub terms: LeaseTerms,
}

/// Where a request for a list goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// This node serves the list's shard at this epoch.
    Local(Epoch),
    /// Another node holds it, reached at `addr`.
    Remote {
        /// The owner.
        node: NodeId,
        /// Its HTTP address.
        addr: String,
    },
    /// Nobody serves the shard right now (a failover or a handoff in progress).
    Unowned(ShardId),
}

#[derive(Default)]
struct State {
    held: HashMap<ShardId, HeldLease>,
    /// Held shards being handed off: no longer served, not yet released.
    leaving: HashSet<ShardId>,
    /// The coordinator's table at the last poll.
    leases: Vec<LeaseRow>,
    members: Vec<MemberRow>,
    /// When the table was read (node time), and the last database error.
    polled_at: Option<NodeTime>,
    last_error: Option<String>,
}

/// One cluster member: leases held, the shard table, and the keeper task.
pub struct Node {
    settings: NodeSettings,
    origin: Instant,
    state: RwLock<State>,
    fenced_tx: mpsc::UnboundedSender<(ShardId, Epoch)>,
    fenced_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<(ShardId, Epoch)>>>,
    poke: Notify,
}

/// `GET /cluster`: this node's view of the cluster.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterView {
    /// The node answering.
    pub node: String,
    /// Its advertised address.
    pub addr: String,
    /// Shard count.
    pub shards: u32,
    /// Lease ttl, renewal period and margin in milliseconds.
    pub lease_ttl_ms: u64,
    /// Renewal period in milliseconds.
    pub renew_every_ms: u64,
    /// Safety margin in milliseconds.
    pub lease_margin_ms: u64,
    /// Shards this node serves now.
    pub serving: usize,
    /// Whether every shard is held by its preferred live owner, by the last table read.
    pub settled: bool,
    /// Milliseconds since the table below was read.
    pub table_age_ms: Option<u64>,
    /// The last database error of the keeper, if its last tick failed.
    pub last_error: Option<String>,
    /// Every member.
    pub members: Vec<MemberView>,
    /// Every shard.
    pub leases: Vec<LeaseView>,
}

/// A member in [`ClusterView`].
#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    /// Its id.
    pub node: String,
    /// Its address.
    pub addr: String,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: u64,
    /// Whether it counts as live (heartbeat within the lease ttl).
    pub live: bool,
    /// Shards it holds by the table.
    pub shards: usize,
}

/// A shard in [`ClusterView`].
#[derive(Clone, Debug, Serialize)]
pub struct LeaseView {
    /// The shard.
    pub shard: u32,
    /// Its holder, if any.
    pub owner: Option<String>,
    /// Its epoch.
    pub epoch: u64,
    /// Milliseconds until its lease expires (`None`: expired or released).
    pub expires_in_ms: Option<u64>,
}

impl Node {
    /// A node that holds nothing yet; [`Node::join`] and [`Node::spawn_keeper`] start it.
    pub fn new(settings: NodeSettings) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        Arc::new(Node {
            settings,
            origin: Instant::now(),
            state: RwLock::new(State::default()),
            fenced_tx: tx,
            fenced_rx: std::sync::Mutex::new(Some(rx)),
            poke: Notify::new(),
        })
    }

    /// This node's settings.
    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    /// The shard map.
    pub fn shards(&self) -> ShardMap {
        self.settings.shards
    }

    fn now(&self) -> NodeTime {
        NodeTime(self.origin.elapsed())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The epoch at which this node serves `shard` now, if it does.
    pub fn serving_epoch(&self, shard: ShardId) -> Option<Epoch> {
        let now = self.now();
        let st = self.read();
        if st.leaving.contains(&shard) {
            return None;
        }
        st.held
            .get(&shard)
            .filter(|h| h.may_serve(now))
            .map(|h| h.epoch())
    }

    /// Where a request for `list` goes, by the leases held and the last table read.
    pub fn route(&self, list: &ListName) -> Route {
        let shard = self.settings.shards.shard_of(list);
        if let Some(epoch) = self.serving_epoch(shard) {
            return Route::Local(epoch);
        }
        let st = self.read();
        let owner = st
            .leases
            .get(shard.0 as usize)
            .filter(|row| !row.is_free())
            .and_then(|row| row.owner.clone())
            .filter(|o| *o != self.settings.id);
        let Some(node) = owner else {
            return Route::Unowned(shard);
        };
        match st.members.iter().find(|m| m.node == node) {
            Some(m) => Route::Remote {
                node,
                addr: m.addr.clone(),
            },
            None => Route::Unowned(shard),
        }
    }

    /// A store of `shard` at `epoch` was fenced: stop serving it now (the keeper
    /// stops its servers and reads the table again).
    pub fn report_fenced(&self, shard: ShardId, epoch: Epoch) {
        let _ = self.fenced_tx.send((shard, epoch));
    }

    /// Asks the keeper for a tick now (a router found the table stale).
    pub fn refresh(&self) {
        self.poke.notify_one();
    }

    /// The members counted live at the last table read, this node always among them.
    fn live_members(&self, st: &State) -> Vec<NodeId> {
        let mut live: Vec<NodeId> = st
            .members
            .iter()
            .filter(|m| m.heartbeat_age < self.settings.terms.ttl())
            .map(|m| m.node.clone())
            .collect();
        if !live.contains(&self.settings.id) {
            live.push(self.settings.id.clone());
        }
        live.sort();
        live
    }

    /// This node's view for `GET /cluster`.
    pub fn view(&self) -> ClusterView {
        let now = self.now();
        let st = self.read();
        let live = self.live_members(&st);
        let mut counts: HashMap<&NodeId, usize> = HashMap::new();
        let mut settled = st.leases.len() == self.settings.shards.shards() as usize;
        for row in &st.leases {
            let owner = row.owner.as_ref().filter(|_| !row.is_free());
            if let Some(o) = owner {
                *counts.entry(o).or_default() += 1;
            }
            let preferred = self.settings.shards.preferred_owner(row.shard, &live);
            if owner.is_none() || owner != preferred {
                settled = false;
            }
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let terms = self.settings.terms;
        ClusterView {
            node: self.settings.id.0.clone(),
            addr: self.settings.addr.clone(),
            shards: self.settings.shards.shards(),
            lease_ttl_ms: ms(terms.ttl()),
            renew_every_ms: ms(terms.renew_every()),
            lease_margin_ms: ms(terms.margin()),
            serving: st
                .held
                .iter()
                .filter(|(s, h)| h.may_serve(now) && !st.leaving.contains(s))
                .count(),
            settled,
            table_age_ms: st.polled_at.map(|t| ms(now.0.saturating_sub(t.0))),
            last_error: st.last_error.clone(),
            members: st
                .members
                .iter()
                .map(|m| MemberView {
                    node: m.node.0.clone(),
                    addr: m.addr.clone(),
                    heartbeat_age_ms: ms(m.heartbeat_age),
                    live: live.contains(&m.node),
                    shards: counts.get(&m.node).copied().unwrap_or(0),
                })
                .collect(),
            leases: st
                .leases
                .iter()
                .map(|r| LeaseView {
                    shard: r.shard.0,
                    owner: r.owner.as_ref().map(|o| o.0.clone()),
                    epoch: r.epoch.0,
                    expires_in_ms: r.expires_in.map(ms),
                })
                .collect(),
        }
    }

    /// The first tick, before the node serves: registers it and claims what it can.
    pub async fn join(self: &Arc<Self>, store: &Arc<dyn ClusterStore>, system: &TodoSystem) {
        self.tick(store, system).await;
    }

    /// Starts the keeper task; it ends when `stop` turns true.
    pub fn spawn_keeper(
        self: &Arc<Self>,
        store: Arc<dyn ClusterStore>,
        system: TodoSystem,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let node = Arc::clone(self);
        let mut fenced = self
            .fenced_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        tokio::spawn(async move {
            let every = node.settings.terms.renew_every();
            loop {
                let woke_for_fence = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(every) => None,
                    () = node.poke.notified() => None,
                    f = async {
                        match fenced.as_mut() {
                            Some(rx) => rx.recv().await,
                            None => std::future::pending().await,
                        }
                    } => f,
                };
                if let Some((shard, epoch)) = woke_for_fence {
                    let mut lost = vec![(shard, epoch)];
                    if let Some(rx) = fenced.as_mut() {
                        while let Ok(more) = rx.try_recv() {
                            lost.push(more);
                        }
                    }
                    node.lose(&lost, "fenced", &system).await;
                }
                node.tick(&store, &system).await;
                // At most one tick per 50 ms, however often it is poked.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }

    /// Stops serving `lost` (shard, epoch) pairs that are still held at that epoch.
    /// A pair whose shard is held at a newer epoch (the node lost it and claimed it
    /// again) only has its list servers stopped: one of them still holds a list
    /// activated at the older epoch, and is activated afresh at its next request.
    async fn lose(&self, lost: &[(ShardId, Epoch)], reason: &'static str, system: &TodoSystem) {
        let mut gone = Vec::new();
        let mut stale = Vec::new();
        {
            let mut st = self.write();
            for (shard, epoch) in lost {
                match st.held.get(shard).map(|h| h.epoch()) {
                    Some(held) if held == *epoch => {
                        st.held.remove(shard);
                        st.leaving.remove(shard);
                        gone.push(*shard);
                    }
                    Some(held) if held > *epoch => stale.push(*shard),
                    _ => {}
                }
            }
        }
        if !stale.is_empty() {
            self.stop_servers(&stale, false, system).await;
        }
        if gone.is_empty() {
            return;
        }
        metrics::counter!(LEASES_LOST, "reason" => reason).increment(gone.len() as u64);
        tracing::warn!(shards = ?gone.iter().map(|s| s.0).collect::<Vec<_>>(), reason, "stopped serving shards");
        self.stop_servers(&gone, false, system).await;
        self.set_gauge();
    }

    /// Stops the list servers of `shards` (with `drain`, their queued work first).
    async fn stop_servers(&self, shards: &[ShardId], drain: bool, system: &TodoSystem) {
        let set: HashSet<ShardId> = shards.iter().copied().collect();
        let map = self.settings.shards;
        let registry = system.registry();
        let names: Vec<ListName> = registry
            .live_names()
            .into_iter()
            .filter(|name| set.contains(&map.shard_of(name)))
            .collect();
        // All at once: each stop may wait for its server's final store.
        futures::future::join_all(names.iter().map(|name| registry.stop(name, drain))).await;
    }

    fn set_gauge(&self) {
        let n = self.read().held.len();
        metrics::gauge!(LEASES_HELD).set(n as f64);
    }

    /// One keeper round (see the module comment).
    async fn tick(self: &Arc<Self>, store: &Arc<dyn ClusterStore>, system: &TodoSystem) {
        let me = &self.settings.id;
        let terms = self.settings.terms;
        let mut errors = Vec::new();

        if let Err(e) = store
            .heartbeat(me, &self.settings.addr, self.settings.shards.shards())
            .await
        {
            errors.push(e.to_string());
        }

        // Renew everything held; the clock is read before the request goes out.
        let held: Vec<(ShardId, Epoch)> = self
            .read()
            .held
            .values()
            .map(|h| (h.shard(), h.epoch()))
            .collect();
        if !held.is_empty() {
            let asked_at = self.now();
            match store.renew(me, &held, terms.ttl()).await {
                Ok(renewed) => {
                    let renewed: HashSet<ShardId> = renewed.into_iter().collect();
                    let refused: Vec<(ShardId, Epoch)> = held
                        .iter()
                        .filter(|(s, _)| !renewed.contains(s))
                        .copied()
                        .collect();
                    {
                        let mut st = self.write();
                        for s in &renewed {
                            if let Some(h) = st.held.get_mut(s) {
                                h.renewed(asked_at);
                            }
                        }
                    }
                    self.lose(&refused, "refused", system).await;
                }
                Err(e) => errors.push(e.to_string()),
            }
        }

        // Leases that ran out before a renewal got through.
        let now = self.now();
        let expired: Vec<(ShardId, Epoch)> = self
            .read()
            .held
            .values()
            .filter(|h| !h.may_serve(now))
            .map(|h| (h.shard(), h.epoch()))
            .collect();
        self.lose(&expired, "expired", system).await;

        // The table.
        let table = async {
            Ok::<_, crate::domain::port::StorageError>((
                store.members().await?,
                store.leases().await?,
            ))
        };
        match table.await {
            Ok((members, leases)) => {
                let mut st = self.write();
                st.members = members;
                st.leases = leases;
                st.polled_at = Some(self.now());
            }
            Err(e) => errors.push(e.to_string()),
        }

        // What rendezvous hashing gives this node, and what it should hand off.
        let (to_claim, to_release, back) = {
            let st = self.read();
            let live = self.live_members(&st);
            let mut claim = Vec::new();
            let mut release = Vec::new();
            let mut back = Vec::new();
            for row in &st.leases {
                let preferred = self.settings.shards.preferred_owner(row.shard, &live);
                let mine = preferred == Some(me);
                let holding = st.held.contains_key(&row.shard);
                if mine && !holding && row.is_free() {
                    claim.push((row.shard, row.owner.clone()));
                } else if !mine && holding && !st.leaving.contains(&row.shard) {
                    if let Some(h) = st.held.get(&row.shard) {
                        release.push((row.shard, h.epoch()));
                    }
                } else if mine && holding && st.leaving.contains(&row.shard) {
                    back.push(row.shard);
                }
            }
            (claim, release, back)
        };
        if !back.is_empty() {
            // Its preferred owner went away while the handoff waited: serve it again.
            let mut st = self.write();
            for s in &back {
                st.leaving.remove(s);
            }
        }

        if !to_claim.is_empty() && errors.is_empty() {
            let shards: Vec<ShardId> = to_claim.iter().map(|(s, _)| *s).collect();
            let asked_at = self.now();
            match store.claim(me, &shards, terms.ttl()).await {
                Ok(won) => {
                    let previous: HashMap<ShardId, Option<NodeId>> = to_claim.into_iter().collect();
                    let mut st = self.write();
                    for (shard, epoch) in &won {
                        st.held
                            .insert(*shard, HeldLease::granted(*shard, *epoch, asked_at, terms));
                        st.leaving.remove(shard);
                        if let Some(row) = st.leases.get_mut(shard.0 as usize) {
                            row.owner = Some(me.clone());
                            row.epoch = *epoch;
                            row.expires_in = Some(terms.ttl());
                        }
                        if previous
                            .get(shard)
                            .and_then(|o| o.as_ref())
                            .is_some_and(|o| o != me)
                        {
                            metrics::counter!(TAKEOVERS).increment(1);
                        }
                    }
                    metrics::counter!(CLAIMS).increment(won.len() as u64);
                    if !won.is_empty() {
                        tracing::info!(claimed = won.len(), "claimed shards");
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }

        if !to_release.is_empty() {
            {
                let mut st = self.write();
                for (s, _) in &to_release {
                    st.leaving.insert(*s);
                }
            }
            // In a task of its own, so a slow drain never delays the next renewal.
            let (node, store, system) = (Arc::clone(self), Arc::clone(store), system.clone());
            tokio::spawn(async move { node.hand_off(to_release, store.as_ref(), &system).await });
        }

        self.set_gauge();
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        if let Some(e) = &error {
            tracing::warn!(error = %e, "cluster keeper: database error");
        }
        self.write().last_error = error;
    }

    /// Stops the servers of `shards` (held, marked leaving) with their stores
    /// drained, then releases them to their preferred owners.
    async fn hand_off(
        &self,
        shards: Vec<(ShardId, Epoch)>,
        store: &dyn ClusterStore,
        system: &TodoSystem,
    ) {
        let ids: Vec<ShardId> = shards.iter().map(|(s, _)| *s).collect();
        self.stop_servers(&ids, true, system).await;
        // Only those still leaving: the preferred owner may have gone meanwhile.
        let shards: Vec<(ShardId, Epoch)> = {
            let st = self.read();
            shards
                .into_iter()
                .filter(|(s, e)| {
                    st.leaving.contains(s) && st.held.get(s).is_some_and(|h| h.epoch() == *e)
                })
                .collect()
        };
        match store.release(&self.settings.id, &shards).await {
            Ok(()) => {
                let mut st = self.write();
                for (s, _) in &shards {
                    st.held.remove(s);
                    st.leaving.remove(s);
                    if let Some(row) = st.leases.get_mut(s.0 as usize) {
                        row.owner = None;
                        row.expires_in = None;
                    }
                }
                drop(st);
                metrics::counter!(HANDOFFS).increment(shards.len() as u64);
                if !shards.is_empty() {
                    tracing::info!(
                        released = shards.len(),
                        "handed shards off to their preferred owners"
                    );
                }
            }
            Err(e) => {
                // Served again until a later tick hands them off once more.
                let mut st = self.write();
                for (s, _) in &shards {
                    st.leaving.remove(s);
                }
                drop(st);
                tracing::warn!(error = %e, "handoff: release failed; retried at a later tick");
            }
        }
        self.set_gauge();
    }

    /// A clean exit: releases every lease held (after the to-do system has stored
    /// what it held) and removes this node's member row, so peers take its shards
    /// at once instead of after the lease ttl.
    pub async fn leave(&self, store: &dyn ClusterStore) {
        let held: Vec<(ShardId, Epoch)> = {
            let mut st = self.write();
            let held = st.held.values().map(|h| (h.shard(), h.epoch())).collect();
            st.held.clear();
            st.leaving.clear();
            held
        };
        if let Err(e) = store.release(&self.settings.id, &held).await {
            tracing::warn!(error = %e, "leases not released at exit; peers take them after the lease ttl");
        }
        if let Err(e) = store.leave(&self.settings.id).await {
            tracing::warn!(error = %e, "member row not removed at exit");
        }
        self.set_gauge();
    }
}
