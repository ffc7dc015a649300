//! The `sluicegate` binary as a user runs it: the command line and SIGHUP reloads
//! ([`cli`]), graceful shutdown ([`shutdown`]), SIGKILL with durable acks
//! ([`crash`]), the data directory lock ([`data_dir_lock`]), the Grafana dashboard's
//! metrics ([`dashboards`]), `/dashboard` in headless Chromium
//! ([`dashboard_browser`]), a real Prometheus scraping it ([`prometheus`]), and
//! `sluicegate experiment` ([`experiment`]).

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod crash;
mod dashboard_browser;
mod dashboards;
mod data_dir_lock;
mod experiment;
mod prometheus;
mod shutdown;
