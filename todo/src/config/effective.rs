//! The effective settings of a config, one `key = value` line each, as
//! `sluicegate check-config` prints them (a URL holding a password is not shown).

use std::fmt::Write as _;
use std::time::Duration;

use super::{name_of, routing_name, Config};

impl Config {
    /// One `key = value` line per setting, for `sluicegate check-config`.
    pub fn effective_settings(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "storage.backend = {}", name_of(&self.storage.backend));
        if let Some(url) = &self.storage.url {
            let secret = url
                .parse::<tokio_postgres::Config>()
                .is_ok_and(|c| c.get_password().is_some());
            if secret {
                let _ = writeln!(s, "storage.url = (set; not shown, it holds a password)");
            } else {
                let _ = writeln!(s, "storage.url = {url}");
            }
        }
        let _ = writeln!(
            s,
            "storage.data_dir = {}",
            self.storage
                .data_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "./data (default)".into())
        );
        let _ = writeln!(s, "system.default_ack = {}", self.system.default_ack);
        let _ = writeln!(
            s,
            "system.call_timeout = {}",
            humantime::format_duration(self.system.call_timeout)
        );
        let _ = writeln!(
            s,
            "system.idle_timeout = {}",
            humantime::format_duration(self.system.idle_timeout)
        );
        let _ = writeln!(
            s,
            "system.max_live_servers = {}",
            self.system
                .max_live_servers
                .map(|n| n.to_string())
                .unwrap_or_else(|| "none".into())
        );
        let _ = writeln!(
            s,
            "system.idempotency_window = {}",
            humantime::format_duration(self.system.idempotency_window)
        );
        let _ = writeln!(s, "database.workers = {}", self.database.workers);
        let _ = writeln!(
            s,
            "database.routing = {}",
            routing_name(self.database.routing)
        );
        for (role, p) in self.policies() {
            let _ = writeln!(s, "mailbox.{role} = {p}");
        }
        let l = &self.limit;
        let _ = writeln!(s, "limit.enabled = {}", l.enabled);
        let _ = writeln!(s, "limit.initial = {}", l.initial);
        let _ = writeln!(s, "limit.min = {}", l.min);
        let _ = writeln!(s, "limit.max = {}", l.max);
        let _ = writeln!(s, "limit.tolerance_percent = {}", l.tolerance_percent);
        if let Some(c) = &self.cluster {
            let d = |d: Duration| humantime::format_duration(d).to_string();
            let _ = writeln!(
                s,
                "cluster.node_id = {}",
                c.node_id.as_deref().unwrap_or("(from --node-id)")
            );
            let _ = writeln!(
                s,
                "cluster.advertise = {}",
                c.advertise
                    .as_deref()
                    .unwrap_or("(http:// and the address bound)")
            );
            let _ = writeln!(s, "cluster.shards = {}", c.shards);
            let _ = writeln!(s, "cluster.lease_ttl = {}", d(c.lease_ttl));
            let _ = writeln!(s, "cluster.renew_every = {}", d(c.renew_every));
            let _ = writeln!(s, "cluster.lease_margin = {}", d(c.lease_margin));
            #[cfg(feature = "fault-injection")]
            if !c.store_delay.is_zero() {
                let _ = writeln!(
                    s,
                    "cluster.store_delay = {} (fault injection)",
                    d(c.store_delay)
                );
            }
        }
        s
    }
}
