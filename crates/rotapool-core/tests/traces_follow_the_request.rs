//! Traces as an OpenTelemetry pipeline sees them: a rotation's events appear under the request that met it, every
//! event carries the pool's name and secret id, and every span rotapool opens is closed again (a span is exported
//! only when it closes, so a span that lives as long as the process is never seen). A small subscriber records
//! each span with its parent, each close, and each event with its ancestors.

mod common;

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{FakeDb, FaultyStore};
use tracing::{
    field::{Field, Visit},
    span, Event, Instrument, Subscriber,
};
use tracing_subscriber::{
    layer::{Context, SubscriberExt},
    registry::LookupSpan,
    Layer,
};

const OLD: &str = "old-Pa55word-for-traces";
const NEW: &str = "new-Pa55word-for-traces";
const POOL_NAME: &str = "db.client.connection.pool.name";
const SECRET_ID: &str = "rotapool.secret_id";

#[tokio::test(start_paused = true)]
async fn a_rotation_shows_up_under_the_request_that_met_it() {
    let (recorder, _subscriber) = Recorder::install();
    let (db, store) = (FakeDb::new(OLD), FaultyStore::new(OLD));
    let pool = common::builder(&db, &store)
        .name("orders")
        .build()
        .await
        .expect("the pool builds");
    common::rotate(&db, &store, NEW);

    // The request's get() logs in with the old password, is rejected, and the round it starts (a task of its own)
    // reads the new version and adopts it.
    let request = tracing::info_span!("request", id = 7);
    let conn = pool
        .get()
        .instrument(request.clone())
        .await
        .expect("get() survives the rotation");
    assert_eq!(pool.generation(), 2, "the new version is adopted");
    drop((conn, request));
    // The round's task ends just after it wakes the callers waiting on it.
    tokio::time::sleep(Duration::from_millis(10)).await;

    let recorded = recorder.snapshot();
    let request = recorded.span_named("request");
    for message in [
        "the database rejected the credentials",
        "read the secret",
        "adopted a new version of the secret",
    ] {
        let under: Vec<_> = recorded
            .events
            .iter()
            .filter(|e| e.message == message && e.ancestors.contains(&request.seq))
            .collect();
        assert!(
            !under.is_empty(),
            "no `{message}` event under the request span; events:\n{recorded}"
        );
    }
    recorded.assert_every_event_names_the_pool("orders");
    let opened: Vec<_> = recorded.rotapool_spans().collect();
    assert!(
        opened.iter().any(|s| s.name == "rotapool.refresh"),
        "the round ran in a span of its own:\n{recorded}"
    );
    for span in &opened {
        assert!(
            recorded.ancestors(span).contains(&request.seq),
            "rotapool's span `{}` is not under the request: a span of the pool's own?\n{recorded}",
            span.name
        );
        assert!(
            span.closed,
            "span `{}` never closed:\n{recorded}",
            span.name
        );
    }
    recorded.assert_no_password(&[OLD, NEW]);
}

#[tokio::test(start_paused = true)]
async fn each_proactive_wake_has_a_short_span_of_its_own() {
    let (recorder, _subscriber) = Recorder::install();
    let (db, store) = (FakeDb::new(OLD), FaultyStore::new(OLD));
    let pool = common::builder(&db, &store)
        .name("orders")
        .proactive_refresh(common::proactive_every_second())
        .build()
        .await
        .expect("the pool builds");
    tokio::time::sleep(Duration::from_secs(2)).await;
    common::rotate(&db, &store, NEW);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pool.generation(),
        2,
        "the proactive refresh adopts the new version"
    );
    let while_running = recorder.snapshot();
    let wakes: Vec<_> = while_running
        .spans
        .iter()
        .filter(|s| s.name == "rotapool.proactive_refresh")
        .collect();
    assert!(
        wakes.len() >= 4,
        "one span per wake, not one for the task's life:\n{while_running}"
    );
    assert!(
        wakes.iter().filter(|s| !s.closed).count() <= 1,
        "only the wake under way may be open:\n{while_running}"
    );
    assert!(
        wakes.iter().all(|s| s.parent.is_none()),
        "no caller: each wake is a root"
    );
    let adopted = while_running
        .events
        .iter()
        .find(|e| e.message == "adopted a new version of the secret")
        .unwrap_or_else(|| panic!("no adoption:\n{while_running}"));
    assert!(
        wakes.iter().any(|s| adopted.ancestors.contains(&s.seq)),
        "the adoption is under the wake that made it:\n{while_running}"
    );

    drop(pool);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let recorded = recorder.snapshot();
    recorded.assert_every_event_names_the_pool("orders");
    for span in recorded.rotapool_spans() {
        assert!(
            span.closed,
            "span `{}` never closed:\n{recorded}",
            span.name
        );
    }
    recorded.assert_no_password(&[OLD, NEW]);
}

/// A span as opened, numbered in order (the subscriber reuses ids).
#[derive(Debug, Clone)]
struct SpanRecord {
    seq: usize,
    name: &'static str,
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
    closed: bool,
}

#[derive(Debug, Clone)]
struct EventRecord {
    target: String,
    message: String,
    fields: BTreeMap<String, String>,
    /// The spans it was emitted in, innermost first.
    ancestors: Vec<usize>,
}

#[derive(Debug, Clone, Default)]
struct Recorded {
    spans: Vec<SpanRecord>,
    events: Vec<EventRecord>,
}

impl Recorded {
    fn span_named(&self, name: &str) -> &SpanRecord {
        let mut named = self.spans.iter().filter(|s| s.name == name);
        let span = named
            .next()
            .unwrap_or_else(|| panic!("no span `{name}`:\n{self}"));
        assert!(named.next().is_none(), "more than one span `{name}`");
        span
    }

    fn rotapool_spans(&self) -> impl Iterator<Item = &SpanRecord> {
        self.spans.iter().filter(|s| s.name.starts_with("rotapool"))
    }

    fn ancestors(&self, span: &SpanRecord) -> Vec<usize> {
        std::iter::successors(span.parent, |&p| self.spans[p].parent).collect()
    }

    /// Every event rotapool emitted, and every span it opened, carries the pool's name and secret id.
    fn assert_every_event_names_the_pool(&self, name: &str) {
        let ours: Vec<_> = self
            .events
            .iter()
            .filter(|e| e.target.starts_with("rotapool"))
            .collect();
        assert!(!ours.is_empty(), "rotapool emitted no event:\n{self}");
        let fields = ours.iter().map(|e| (&e.fields, e.message.as_str()));
        let spans = self.rotapool_spans().map(|s| (&s.fields, s.name));
        for (fields, what) in fields.chain(spans) {
            assert_eq!(
                fields.get(POOL_NAME).map(String::as_str),
                Some(name),
                "`{what}` lacks {POOL_NAME}: {fields:?}"
            );
            assert_eq!(
                fields.get(SECRET_ID).map(String::as_str),
                Some("test/db"),
                "`{what}` lacks {SECRET_ID}: {fields:?}"
            );
        }
    }

    fn assert_no_password(&self, passwords: &[&str]) {
        let text = self.to_string();
        for password in passwords {
            assert!(!text.contains(password), "a password in the trace:\n{text}");
        }
    }
}

impl fmt::Display for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.spans {
            let state = if s.closed { "closed" } else { "OPEN" };
            writeln!(
                f,
                "span #{} {} (parent {:?}, {state}) {:?}",
                s.seq, s.name, s.parent, s.fields
            )?;
        }
        for e in &self.events {
            writeln!(
                f,
                "event in {:?}: {} {:?}",
                e.ancestors, e.message, e.fields
            )?;
        }
        Ok(())
    }
}

/// The layer that records; installed for the test's thread, where paused-time tests run every task.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recorded>>);

/// A span's number, kept in its extensions.
struct Seq(usize);

impl Recorder {
    /// Installs a recorder as the subscriber of this thread while the guard lives.
    fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let recorder = Self::default();
        let subscriber = tracing_subscriber::registry().with(recorder.clone());
        (
            recorder.clone(),
            tracing::subscriber::set_default(subscriber),
        )
    }

    fn snapshot(&self) -> Recorded {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("the registry knows a new span");
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Seq>().map(|s| s.0));
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let mut recorded = self.0.lock().unwrap();
        let seq = recorded.spans.len();
        recorded.spans.push(SpanRecord {
            seq,
            name: attrs.metadata().name(),
            parent,
            fields: fields.0,
            closed: false,
        });
        span.extensions_mut().insert(Seq(seq));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or_default();
        let ancestors = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .filter_map(|s| s.extensions().get::<Seq>().map(|q| q.0))
                    .collect()
            })
            .unwrap_or_default();
        self.0.lock().unwrap().events.push(EventRecord {
            target: event.metadata().target().to_owned(),
            message,
            fields: fields.0,
            ancestors,
        });
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let seq = span.extensions().get::<Seq>().map(|s| s.0);
        if let Some(seq) = seq {
            self.0.lock().unwrap().spans[seq].closed = true;
        }
    }
}
