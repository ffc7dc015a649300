//! What the test binaries share: running `sluicegate serve` ([`serve`]), reading
//! `/metrics` ([`prom`]), waiting for an effect ([`eventually`]), the Grafana
//! dashboard's queries ([`dashboard`]) and a private PostgreSQL ([`pg`]).
// Each test binary uses a part of these modules, none uses all of them.
#![allow(dead_code)]

pub mod dashboard;
pub mod eventually;
pub mod pg;
pub mod prom;
pub mod serve;
