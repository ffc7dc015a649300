//! Several nodes on one PostgreSQL, and PostgreSQL coming and going: real node
//! processes ([`cluster`]), the lease and fence protocol on a virtual clock
//! ([`cluster_protocol`]), and a single server while the database is down
//! ([`postgres`]), and keyed writes repeated until known across a frozen owner
//! ([`retries`]).

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod cluster_protocol;
mod postgres;
mod retries;
