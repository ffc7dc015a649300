//! Test support shared by several test binaries: a `tracing` subscriber that records
//! every event's level and `u64` fields.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One recorded event: its level and its `u64` fields by name.
#[derive(Clone, Debug)]
pub struct Line {
    pub level: tracing::Level,
    pub fields: HashMap<&'static str, u64>,
}

/// Records every event (install with `tracing::subscriber::set_default`).
#[derive(Default, Clone)]
pub struct Lines(pub Arc<Mutex<Vec<Line>>>);

impl Lines {
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
