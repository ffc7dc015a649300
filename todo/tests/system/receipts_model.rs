//! Model-based property test of idempotency keys through the whole system: random
//! keyed and unkeyed adds and deletes on one list, repeats of earlier keys with the
//! same or another request, and restarts, against a reference model of the key
//! table written here. Every answer must be the model's (a new write, a replay of
//! the first result, or a refused reuse), and the stored list must be the model's,
//! on SQLite and on the files backend.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use proptest::prelude::*;
use sluicegate_todo::config::AckMode;
use sluicegate_todo::domain::server::{KeyedWrite, Write};
use sluicegate_todo::domain::{Entry, IdempotencyKey, ListName, TodoSystemError, WriteOutcome};
use sluicegate_todo::storage::BackendKind;

use crate::todo_system::{runtime, start};

#[derive(Clone, Debug)]
enum Op {
    /// A write with key `key` (none: unkeyed).
    Write { key: Option<u8>, write: W },
    /// Shut the system down and start it again on the same data.
    Restart,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum W {
    Add(u8),
    Delete(u64),
}

impl W {
    fn write(&self) -> Write {
        match self {
            W::Add(t) => Write::Add {
                date: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
                title: format!("t{t}"),
            },
            W::Delete(id) => Write::Delete { id: *id },
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let w = prop_oneof![(0u8..3).prop_map(W::Add), (1u64..5).prop_map(W::Delete)];
    prop_oneof![
        8 => (prop::option::of(0u8..4), w).prop_map(|(key, write)| Op::Write { key, write }),
        1 => Just(Op::Restart),
    ]
}

/// The reference: the list's entries and, per key, the request and its result.
#[derive(Default)]
struct Model {
    next: u64,
    entries: BTreeMap<u64, Entry>,
    receipts: BTreeMap<u8, (W, Entry)>,
}

/// What the model says a write is answered with.
#[derive(Debug, PartialEq)]
enum Expect {
    Done(Entry),
    Replayed(Entry),
    KeyReused,
    NotFound,
}

impl Model {
    fn apply(&mut self, key: Option<u8>, w: &W) -> Expect {
        if let Some(k) = key {
            if let Some((first, result)) = self.receipts.get(&k) {
                return if first == w {
                    Expect::Replayed(result.clone())
                } else {
                    Expect::KeyReused
                };
            }
        }
        let entry = match w {
            W::Add(t) => {
                self.next += 1;
                let e = Entry {
                    id: self.next,
                    date: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
                    title: format!("t{t}"),
                    done: false,
                };
                self.entries.insert(e.id, e.clone());
                e
            }
            W::Delete(id) => match self.entries.remove(id) {
                Some(e) => e,
                // A refused write records no receipt.
                None => return Expect::NotFound,
            },
        };
        if let Some(k) = key {
            self.receipts.insert(k, (w.clone(), entry.clone()));
        }
        Expect::Done(entry)
    }
}

async fn run(backend: BackendKind, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let list = ListName::new("keyed").unwrap();
    let mut sys = start(backend, dir.path()).await;
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Restart => {
                sys.shutdown().await;
                sys = start(backend, dir.path()).await;
            }
            Op::Write { key, write } => {
                let want = model.apply(key, &write);
                let request = KeyedWrite {
                    write: write.write(),
                    key: key.map(|k| IdempotencyKey::new(format!("key-{k}")).unwrap()),
                };
                let got = match sys.write(&list, request, Some(AckMode::Durable)).await {
                    Ok(WriteOutcome::Done(e)) => Expect::Done(e),
                    Ok(WriteOutcome::Replayed(e)) => Expect::Replayed(e),
                    Err(TodoSystemError::KeyReused(_)) => Expect::KeyReused,
                    Err(TodoSystemError::NotFound(_)) => Expect::NotFound,
                    other => panic!("step {step}: {other:?}"),
                };
                prop_assert_eq!(got, want, "step {} ({:?} with key {:?})", step, write, key);
            }
        }
        let stored: Vec<Entry> = sys.entries(&list, None).await.unwrap();
        let model_entries: Vec<Entry> = model.entries.values().cloned().collect();
        prop_assert_eq!(stored, model_entries, "entries after step {}", step);
    }
    sys.shutdown().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_keyed_writes_behave_like_the_key_table_model(ops in prop::collection::vec(op(), 1..40)) {
        runtime().block_on(run(BackendKind::Sqlite, ops))?;
    }

    #[test]
    fn files_keyed_writes_behave_like_the_key_table_model(ops in prop::collection::vec(op(), 1..40)) {
        runtime().block_on(run(BackendKind::Files, ops))?;
    }
}
