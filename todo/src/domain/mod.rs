//! The chapter 7 to-do domain: the pure list and list names, and the system built
//! on the runtime (one server per list, a registry as the cache, a database pool).
//! It owns what it needs from the layers above as its own types: the storage port
//! ([`port`]), the stored list format, and its [`Settings`] (with [`AckMode`]).

pub mod database;
mod db_metrics;
mod entries;
pub(crate) mod format;
mod list;
mod name;
pub mod port;
pub mod published;
pub mod receipt;
pub mod server;
mod settings;
mod system;

pub use list::{
    parse_date, validate_title, Entry, EntryQuery, EntryUpdate, JsonPage, Page, TodoError,
    TodoList, MAX_TITLE_CHARS,
};
pub use name::{decode_path, encode_path, InvalidListName, ListName, MAX_NAME_BYTES};
pub use receipt::{IdempotencyKey, InvalidKey, Receipt};
pub use settings::{AckMode, InvalidAckMode, Policies, Settings};
pub use system::{Effect, RoleStats, StartSystemError, TodoSystem, TodoSystemError, WriteOutcome};
