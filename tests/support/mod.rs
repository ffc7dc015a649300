//! Test support shared by several test binaries: a `tracing` subscriber that records
//! every event's level and `u64` fields, and a reader of Prometheus samples.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One recorded event: its level and its `u64` fields by name.
#[derive(Clone, Debug)]
pub struct Line {
    pub level: tracing::Level,
    pub fields: HashMap<&'static str, u64>,
}

/// Records every event of the thread it is installed on ([`Lines::install`]).
#[derive(Default, Clone)]
pub struct Lines(pub Arc<Mutex<Vec<Line>>>);

thread_local! {
    /// The recorder of this thread's events, if a test installed one.
    static CURRENT: std::cell::RefCell<Option<Lines>> = const { std::cell::RefCell::new(None) };
}

/// Uninstalls a thread's recorder when dropped.
pub struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

/// The process-wide subscriber: every event goes to the recorder of the thread it
/// happens on. One global subscriber, always interested, instead of a scoped one per
/// test: scoped dispatchers on parallel test threads race over the callsites'
/// cached interest and the global level filter, and lose events.
struct ToThread;

impl tracing::Subscriber for ToThread {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        CURRENT.with(|c| {
            if let Some(lines) = c.borrow().as_ref() {
                tracing::Subscriber::event(lines, event);
            }
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl Lines {
    /// Records this thread's events here until the returned guard drops.
    pub fn install(&self) -> Installed {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let _ = tracing::subscriber::set_global_default(ToThread);
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        Installed
    }

    /// The recorded events at `level`.
    pub fn at(&self, level: tracing::Level) -> Vec<Line> {
        let lines = self.0.lock().unwrap();
        lines.iter().filter(|l| l.level == level).cloned().collect()
    }
}

impl tracing::Subscriber for Lines {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(HashMap<&'static str, u64>);
        impl tracing::field::Visit for Fields {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                self.0.insert(field.name(), value);
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut f = Fields(HashMap::new());
        event.record(&mut f);
        self.0.lock().unwrap().push(Line {
            level: *event.metadata().level(),
            fields: f.0,
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The value of the Prometheus sample `name{...labels}` whose labels include `with`
/// (comment lines skipped).
pub fn prometheus_sample(text: &str, name: &str, with: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(with))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}
