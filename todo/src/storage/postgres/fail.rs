//! Why an attempt of the PostgreSQL backend failed, classified before it is attached
//! to the lists concerned: a statement PostgreSQL refused (the batch's other lists
//! may succeed alone), a connection, pool or timeout failure (nothing will succeed
//! now), or a fence that moved (nothing was written).

use std::sync::Arc;

use super::Source;
use crate::domain::ListName;
use crate::storage::StorageError;

/// A failure of this backend that is not PostgreSQL's own (a timeout, an id out of range).
#[derive(Debug)]
pub(super) struct Failure(pub(super) String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// Why one attempt failed, before it is attached to the lists concerned.
pub(super) enum Fail {
    /// PostgreSQL refused a statement: the others of the batch may succeed alone.
    Db(Source),
    /// Connection, pool or timeout: nothing else will succeed now.
    Down(Source),
    /// A fenced commit found these lists' fences moved past the epochs it carried
    /// (name, the fence now; `None`: never activated): nothing was written.
    Fenced(Vec<(String, Option<i64>)>),
}

impl Fail {
    /// The cause, for a log line.
    pub(super) fn source(&self) -> Source {
        match self {
            Fail::Db(s) | Fail::Down(s) => s.clone(),
            Fail::Fenced(lists) => Arc::new(Failure(format!("fenced lists: {lists:?}"))),
        }
    }
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.as_db_error().is_some() {
            Fail::Db(Arc::new(e))
        } else {
            Fail::Down(Arc::new(e))
        }
    }
}

pub(super) fn error(list: Option<&ListName>, fail: &Fail) -> StorageError {
    match (fail, list) {
        (Fail::Fenced(lists), Some(list)) => {
            let current = lists
                .iter()
                .find(|(name, _)| name == list.as_str())
                .and_then(|(_, fence)| *fence);
            StorageError::Fenced {
                list: list.clone(),
                detail: match current {
                    Some(f) => format!("a newer owner activated it at epoch {f}"),
                    None => "it was not activated at this epoch".into(),
                },
            }
        }
        _ => StorageError::Postgres {
            list: list.cloned(),
            source: fail.source(),
        },
    }
}
