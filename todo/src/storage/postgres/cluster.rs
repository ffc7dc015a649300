//! The PostgreSQL side of a cluster ([`ClusterStore`]): member rows, shard leases
//! and list fences, each rule of `crate::cluster` as one conditional statement
//! timed by the database's clock (`clock_timestamp()`), never a node's.
//!
//! ```sql
//! CREATE TABLE sluicegate.nodes        (node text PRIMARY KEY, addr text NOT NULL, heartbeat_at timestamptz NOT NULL);
//! CREATE TABLE sluicegate.shard_leases (shard integer PRIMARY KEY, owner text, epoch bigint NOT NULL DEFAULT 0,
//!                                       expires_at timestamptz);
//! CREATE TABLE sluicegate.fences       (list text PRIMARY KEY, fence bigint NOT NULL);
//! ```
//!
//! A claim is `UPDATE shard_leases SET owner = $me, epoch = epoch + 1, ... WHERE
//! (owner IS NULL OR expires_at <= clock_timestamp())`; an activation moves a
//! list's fence up in the same transaction as its load; every fenced store first
//! share-locks the list's fence row where it still equals the store's epoch (see
//! `check_fences`), so a store and a takeover of the same list are serialised by
//! PostgreSQL's row lock and READ COMMITTED re-check: a stale store writes 0 rows.
//! The fence rows outlive the lists (a delete keeps them), so a stale owner cannot
//! bring a deleted list back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Object;
use tokio::time::Instant;

use super::{error, Fail, Failure, PostgresStorage};
use crate::cluster::{ClusterStore, Epoch, LeaseRow, MemberRow, NodeId, ShardId};
use crate::domain::port::{ListWrite, StorageError};
use crate::domain::{ListName, TodoList};

/// The cluster's tables, `{s}` standing for the schema; created with the others.
pub(super) const CREATE: &str = "
    CREATE TABLE IF NOT EXISTS {s}.nodes (
        node text PRIMARY KEY, addr text NOT NULL, heartbeat_at timestamptz NOT NULL);
    CREATE TABLE IF NOT EXISTS {s}.shard_leases (
        shard integer PRIMARY KEY, owner text, epoch bigint NOT NULL DEFAULT 0, expires_at timestamptz);
    CREATE TABLE IF NOT EXISTS {s}.fences (list text PRIMARY KEY, fence bigint NOT NULL);";

fn epoch_to_db(e: Epoch) -> Result<i64, Fail> {
    i64::try_from(e.0).map_err(|_| Fail::Db(Arc::new(Failure(format!("epoch {e} out of range")))))
}

fn epoch_from_db(e: i64) -> Epoch {
    Epoch(u64::try_from(e).unwrap_or(0))
}

fn shard_to_db(s: ShardId) -> Result<i32, Fail> {
    i32::try_from(s.0)
        .map_err(|_| Fail::Db(Arc::new(Failure(format!("shard {} out of range", s.0)))))
}

/// A duration as whole milliseconds for `$n::bigint * interval '1 millisecond'`.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds read back as a duration; `None` for a null or negative value.
fn from_millis(ms: Option<f64>) -> Option<Duration> {
    ms.filter(|m| *m > 0.0)
        .map(|m| Duration::from_secs_f64(m / 1000.0))
}

impl PostgresStorage {
    fn q(&self, text: &str) -> String {
        text.replace("{s}", &self.options.schema)
    }

    /// Runs `op` on a pooled connection within the operation timeout, dropping the
    /// connection when it runs out.
    async fn with_client<T, F>(&self, list: Option<&ListName>, op: F) -> Result<T, StorageError>
    where
        F: for<'c> FnOnce(&'c mut Object) -> futures::future::BoxFuture<'c, Result<T, Fail>>,
    {
        let deadline = Instant::now() + self.options.timeout;
        let mut client = self.client(deadline).await.map_err(|f| error(list, &f))?;
        let r = tokio::time::timeout_at(deadline, op(&mut client)).await;
        match r {
            Ok(r) => r.map_err(|f| error(list, &f)),
            Err(_) => {
                drop(Object::take(client));
                Err(error(list, &self.timed_out()))
            }
        }
    }
}

#[async_trait]
impl ClusterStore for PostgresStorage {
    async fn heartbeat(&self, node: &NodeId, addr: &str, shards: u32) -> Result<(), StorageError> {
        let setup = [
            self.q("INSERT INTO {s}.meta (key, value) VALUES ('shards', $1) ON CONFLICT (key) DO NOTHING"),
            self.q("SELECT value FROM {s}.meta WHERE key = 'shards'"),
            self.q("INSERT INTO {s}.shard_leases (shard) SELECT g FROM generate_series(0, $1 - 1) AS g ON CONFLICT (shard) DO NOTHING"),
            self.q("INSERT INTO {s}.nodes (node, addr, heartbeat_at) VALUES ($1, $2, clock_timestamp())
                    ON CONFLICT (node) DO UPDATE SET addr = excluded.addr, heartbeat_at = excluded.heartbeat_at"),
        ];
        let (node, addr) = (node.0.clone(), addr.to_string());
        let first = self.cluster_ready.get().is_none();
        self.with_client(None, move |c| {
            Box::pin(async move {
                if first {
                    let text = shards.to_string();
                    c.execute(&setup[0], &[&text]).await?;
                    let row = c.query_one(&setup[1], &[]).await?;
                    let recorded: String = row.get(0);
                    if recorded != text {
                        return Err(Fail::Db(Arc::new(Failure(format!(
                            "this database's cluster has {recorded} shards, this node is configured for {shards}; every node must use the same cluster.shards"
                        )))));
                    }
                    let n = i32::try_from(shards).unwrap_or(i32::MAX);
                    c.execute(&setup[2], &[&n]).await?;
                }
                c.execute(&setup[3], &[&node, &addr]).await?;
                Ok(())
            })
        })
        .await?;
        let _ = self.cluster_ready.set(());
        Ok(())
    }

    async fn members(&self) -> Result<Vec<MemberRow>, StorageError> {
        let sql = self.q(
            "SELECT node, addr, (EXTRACT(EPOCH FROM (clock_timestamp() - heartbeat_at)) * 1000)::float8
             FROM {s}.nodes ORDER BY node",
        );
        self.with_client(None, move |c| {
            Box::pin(async move {
                let rows = c.query(&sql, &[]).await?;
                Ok(rows
                    .iter()
                    .map(|r| MemberRow {
                        node: NodeId(r.get(0)),
                        addr: r.get(1),
                        heartbeat_age: from_millis(r.get(2)).unwrap_or_default(),
                    })
                    .collect())
            })
        })
        .await
    }

    async fn leave(&self, node: &NodeId) -> Result<(), StorageError> {
        let sql = self.q("DELETE FROM {s}.nodes WHERE node = $1");
        let node = node.0.clone();
        self.with_client(None, move |c| {
            Box::pin(async move {
                c.execute(&sql, &[&node]).await?;
                Ok(())
            })
        })
        .await
    }

    async fn leases(&self) -> Result<Vec<LeaseRow>, StorageError> {
        let sql = self.q("SELECT shard, owner, epoch,
                    (EXTRACT(EPOCH FROM (expires_at - clock_timestamp())) * 1000)::float8
             FROM {s}.shard_leases ORDER BY shard");
        self.with_client(None, move |c| {
            Box::pin(async move {
                let rows = c.query(&sql, &[]).await?;
                Ok(rows
                    .iter()
                    .map(|r| LeaseRow {
                        shard: ShardId(u32::try_from(r.get::<_, i32>(0)).unwrap_or(0)),
                        owner: r.get::<_, Option<String>>(1).map(NodeId),
                        epoch: epoch_from_db(r.get(2)),
                        expires_in: from_millis(r.get(3)),
                    })
                    .collect())
            })
        })
        .await
    }

    async fn claim(
        &self,
        node: &NodeId,
        shards: &[ShardId],
        ttl: Duration,
    ) -> Result<Vec<(ShardId, Epoch)>, StorageError> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.q("UPDATE {s}.shard_leases
             SET owner = $1, epoch = epoch + 1,
                 expires_at = clock_timestamp() + $2::bigint * interval '1 millisecond'
             WHERE shard = ANY($3::integer[])
               AND (owner IS NULL OR expires_at IS NULL OR expires_at <= clock_timestamp())
             RETURNING shard, epoch");
        let node = node.0.clone();
        let ids = shards
            .iter()
            .map(|s| shard_to_db(*s))
            .collect::<Result<Vec<i32>, Fail>>()
            .map_err(|f| error(None, &f))?;
        let ttl = millis(ttl);
        self.with_client(None, move |c| {
            Box::pin(async move {
                let rows = c.query(&sql, &[&node, &ttl, &ids]).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (
                            ShardId(u32::try_from(r.get::<_, i32>(0)).unwrap_or(0)),
                            epoch_from_db(r.get(1)),
                        )
                    })
                    .collect())
            })
        })
        .await
    }

    async fn renew(
        &self,
        node: &NodeId,
        held: &[(ShardId, Epoch)],
        ttl: Duration,
    ) -> Result<Vec<ShardId>, StorageError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.q("UPDATE {s}.shard_leases l
             SET expires_at = clock_timestamp() + $2::bigint * interval '1 millisecond'
             FROM unnest($3::integer[], $4::bigint[]) AS h(shard, epoch)
             WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1
             RETURNING l.shard");
        let (ids, epochs) = held_params(held).map_err(|f| error(None, &f))?;
        let node = node.0.clone();
        let ttl = millis(ttl);
        self.with_client(None, move |c| {
            Box::pin(async move {
                let rows = c.query(&sql, &[&node, &ttl, &ids, &epochs]).await?;
                Ok(rows
                    .iter()
                    .map(|r| ShardId(u32::try_from(r.get::<_, i32>(0)).unwrap_or(0)))
                    .collect())
            })
        })
        .await
    }

    async fn release(&self, node: &NodeId, held: &[(ShardId, Epoch)]) -> Result<(), StorageError> {
        if held.is_empty() {
            return Ok(());
        }
        let sql = self.q(
            "UPDATE {s}.shard_leases l SET owner = NULL, expires_at = NULL
             FROM unnest($2::integer[], $3::bigint[]) AS h(shard, epoch)
             WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1",
        );
        let (ids, epochs) = held_params(held).map_err(|f| error(None, &f))?;
        let node = node.0.clone();
        self.with_client(None, move |c| {
            Box::pin(async move {
                c.execute(&sql, &[&node, &ids, &epochs]).await?;
                Ok(())
            })
        })
        .await
    }

    async fn activate(
        &self,
        name: &ListName,
        epoch: Epoch,
    ) -> Result<Option<TodoList>, StorageError> {
        let bump = self.q("INSERT INTO {s}.fences (list, fence) VALUES ($1, $2)
             ON CONFLICT (list) DO UPDATE SET fence = excluded.fence
             WHERE {s}.fences.fence <= excluded.fence
             RETURNING fence");
        let current = self.q("SELECT fence FROM {s}.fences WHERE list = $1");
        let load = self.sql.load.clone();
        let load_receipts = self.sql.load_receipts.clone();
        let list = name.as_str().to_string();
        let e = epoch_to_db(epoch).map_err(|f| error(Some(name), &f))?;
        let rows = self
            .with_client(Some(name), move |c| {
                Box::pin(async move {
                    let tx = c.transaction().await?;
                    if tx.query_opt(&bump, &[&list, &e]).await?.is_none() {
                        let fence: Option<i64> =
                            tx.query_opt(&current, &[&list]).await?.map(|r| r.get(0));
                        return Err(Fail::Fenced(vec![(list, fence)]));
                    }
                    let stmt = tx.prepare_cached(&load).await?;
                    let rows = tx.query(&stmt, &[&list]).await?;
                    // The old owner's receipts come with its entries: a repeat of a
                    // write it committed is answered here from its receipt.
                    let stmt = tx.prepare_cached(&load_receipts).await?;
                    let receipts = tx.query(&stmt, &[&list]).await?;
                    tx.commit().await?;
                    Ok((rows, receipts))
                })
            })
            .await?;
        self.list_from_rows(name, &rows)
    }

    async fn store_batch_fenced(
        &self,
        writes: &[ListWrite],
        epochs: &[Epoch],
    ) -> Vec<Result<(), StorageError>> {
        let fences: Result<Vec<i64>, Fail> = epochs.iter().map(|e| epoch_to_db(*e)).collect();
        match fences {
            Ok(f) if f.len() == writes.len() => self.store_batch_with(writes, Some(&f)).await,
            Ok(_) => writes
                .iter()
                .map(|w| {
                    Err(error(
                        Some(&w.name),
                        &Fail::Db(Arc::new(Failure("one epoch per write is required".into()))),
                    ))
                })
                .collect(),
            Err(f) => writes
                .iter()
                .map(|w| Err(error(Some(&w.name), &f)))
                .collect(),
        }
    }

    async fn delete_list_fenced(
        &self,
        name: &ListName,
        epoch: Epoch,
    ) -> Result<bool, StorageError> {
        let check = self.sql.check_fences.clone();
        let fences_of = self.sql.fences_of.clone();
        let delete = self.sql.delete_list.clone();
        let list = name.as_str().to_string();
        let e = epoch_to_db(epoch).map_err(|f| error(Some(name), &f))?;
        self.with_client(Some(name), move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let names = vec![list.clone()];
                let passed = tx.query(&check, &[&names, &vec![e]]).await?;
                if passed.is_empty() {
                    let fence: Option<i64> =
                        tx.query_opt(&fences_of, &[&names]).await?.map(|r| r.get(1));
                    return Err(Fail::Fenced(vec![(list, fence)]));
                }
                let n = tx.execute(&delete, &[&list]).await?;
                tx.commit().await?;
                Ok(n > 0)
            })
        })
        .await
    }
}

fn held_params(held: &[(ShardId, Epoch)]) -> Result<(Vec<i32>, Vec<i64>), Fail> {
    let mut ids = Vec::with_capacity(held.len());
    let mut epochs = Vec::with_capacity(held.len());
    for (s, e) in held {
        ids.push(shard_to_db(*s)?);
        epochs.push(epoch_to_db(*e)?);
    }
    Ok((ids, epochs))
}
