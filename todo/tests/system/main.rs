//! The to-do system through its library API and its storage: the whole system on
//! each backend with a model-based property test ([`todo_system`]), the pure to-do
//! list against a model ([`todo_list_model`]), injected storage faults ([`faults`]),
//! the storage backends ([`storage`]), the SQLite writer's commit window and queued
//! batches ([`commit_window`]), what the service logs ([`logs`]), and
//! idempotency keys against a model of the key table ([`receipts_model`]).

#[path = "../support/mod.rs"]
mod support;

mod commit_window;
mod faults;
mod logs;
mod receipts_model;
mod storage;
mod todo_list_model;
mod todo_system;
