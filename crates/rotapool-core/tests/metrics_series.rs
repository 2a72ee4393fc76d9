//! The series a pool reports, as a Prometheus scrape shows them (through `metrics-exporter-prometheus`, which
//! turns the dots of names and attribute keys into underscores): OpenTelemetry names and attribute keys, the pool's
//! name on every series, and the wait series for every way of getting a connection.

mod common;

use std::time::Duration;

use common::{FakeBackend, FakeDb, FaultyStore};
use metrics_exporter_prometheus::PrometheusBuilder;
use rotapool_core::{
    reexports::{TimeoutType, Timeouts},
    Pool, PoolBuilder, PoolError,
};

const POOL: (&str, &str) = ("db_client_connection_pool_name", "orders");

#[tokio::test(start_paused = true)]
async fn every_way_of_getting_a_connection_records_its_wait() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = orders_pool(common::builder(&db, &store).max_size(1)).await;
    let short = Timeouts {
        wait: Some(Duration::from_millis(50)),
        ..pool.timeouts()
    };

    let held = pool.get().await.expect("get()");
    let waited = pool.timeout_get(&short).await;
    assert!(
        matches!(waited, Err(PoolError::Timeout(TimeoutType::Wait))),
        "the only connection is lent: {waited:?}"
    );
    drop(held);
    drop(pool.timeout_get(&short).await.expect("timeout_get()"));
    let weak = pool.weak();
    let upgraded = weak.upgrade().expect("the pool is alive");
    drop(upgraded.get().await.expect("get() through a weak handle"));
    drop(
        upgraded
            .timeout_get(&short)
            .await
            .expect("timeout_get() through a weak handle"),
    );

    let page = recorder.handle().render();
    assert_eq!(
        value(&page, "db_client_connection_wait_time_count", &[POOL]),
        Some(5.0),
        "five connection requests, each one timed:\n{page}"
    );
    assert_eq!(
        value(&page, "db_client_connection_timeouts", &[POOL]),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        value(&page, "db_client_connection_use_time_count", &[POOL]),
        Some(4.0),
        "four borrows returned:\n{page}"
    );
}

/// The wait ends, and the use begins, when deadpool lends the connection: a caller's wait for a busy connection
/// counts, the second a connection sat idle before a borrow does not. On the wall clock (deadpool stamps with
/// `std::time::Instant`), with 0.3 s to measure and 0.7 s of margin.
#[tokio::test]
async fn the_wait_and_the_use_are_timed_from_the_moment_of_lending() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = orders_pool(common::builder(&db, &store).max_size(1)).await;
    let hold = Duration::from_millis(300);

    let held = pool.get().await.expect("get()");
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { drop(pool.get().await.expect("get() after a wait")) }
    });
    tokio::time::sleep(hold).await;
    drop(held);
    waiter.await.expect("the waiting task ends");
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(pool.get().await.expect("get() of an idle connection"));

    let page = recorder.handle().render();
    let sum = |series| value(&page, series, &[POOL]).expect("the series is recorded");
    let (waited, used) = (
        sum("db_client_connection_wait_time_sum"),
        sum("db_client_connection_use_time_sum"),
    );
    // Three borrows: the first held for `hold`, the second waited that long, the third borrowed a connection
    // idle for a second. Only the first two times count, once each.
    assert!(
        (0.3..1.0).contains(&waited),
        "the waits sum to {waited} s:\n{page}"
    );
    assert!(
        (0.3..1.0).contains(&used),
        "the uses sum to {used} s:\n{page}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rotation_is_counted_under_opentelemetry_attribute_keys() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = orders_pool(common::builder(&db, &store)).await;
    drop(pool.get().await.expect("get() before the rotation"));
    common::rotate(&db, &store, "two");
    drop(pool.get().await.expect("get() through the rotation"));
    // The pool's state is sampled every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let page = recorder.handle().render();
    println!("{page}");
    for (name, labels, expected) in [
        (
            "rotapool_logins",
            ("rotapool_login_outcome", "auth_rejected"),
            1.0,
        ),
        ("rotapool_logins", ("rotapool_login_outcome", "ok"), 3.0),
        (
            "rotapool_rotations_adopted",
            ("rotapool_adopted_by", "current"),
            1.0,
        ),
        (
            "rotapool_secret_reads",
            ("rotapool_secret_stage", "AWSCURRENT"),
            2.0,
        ),
        (
            "db_client_connection_count",
            ("db_client_connection_state", "idle"),
            1.0,
        ),
        (
            "db_client_connection_count",
            ("db_client_connection_state", "used"),
            0.0,
        ),
        (
            "rotapool_connections_open",
            ("rotapool_connection_credentials", "current"),
            1.0,
        ),
    ] {
        assert_eq!(
            value(&page, name, &[POOL, labels]),
            Some(expected),
            "{name}{labels:?}:\n{page}"
        );
    }
    assert_eq!(
        value(&page, "rotapool_credentials_generation", &[POOL]),
        Some(2.0)
    );
    assert_eq!(value(&page, "db_client_connection_max", &[POOL]), Some(4.0));

    // Every sample names the pool, and every attribute key is one of the documented ones.
    const KEYS: [&str; 8] = [
        "db_client_connection_pool_name",
        "db_client_connection_state",
        "rotapool_secret_stage",
        "rotapool_read_outcome",
        "rotapool_login_outcome",
        "rotapool_adopted_by",
        "rotapool_connection_credentials",
        "quantile",
    ];
    let samples: Vec<_> = page
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(samples.len() > 10, "{page}");
    for sample in samples {
        let keys = labels(sample);
        assert!(keys.contains(&POOL.0), "no pool name: {sample}");
        assert!(
            keys.iter().all(|k| KEYS.contains(k)),
            "an undocumented attribute: {sample}"
        );
    }
}

/// The pool `builder` makes, named "orders" (the [`POOL`] label).
async fn orders_pool(builder: PoolBuilder<FakeBackend>) -> Pool<FakeBackend> {
    builder
        .name("orders")
        .build()
        .await
        .expect("the pool builds")
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!(r#"{k}="{v}""#)))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// The label keys of one sample line.
fn labels(sample: &str) -> Vec<&str> {
    let Some((_, rest)) = sample.split_once('{') else {
        return Vec::new();
    };
    let inside = rest.rsplit_once('}').map_or(rest, |(inside, _)| inside);
    inside
        .split(',')
        .filter_map(|pair| pair.split_once('=').map(|(key, _)| key))
        .collect()
}
