//! The database sinks of emrship-job against real databases: a PostgreSQL server (see
//! tests/common/postgres.rs; each test in its own schema) and SQLite files.
//!
//! Tests that need a process of their own (killed mid-COPY, or with an environment of their
//! own) re-run this test binary with `child_writer` selected and EMRSHIP_SINK_CHILD_* set.

#![cfg(all(feature = "aws", feature = "job"))]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use emrship::job::model::{
    Day, DaySink, JobError, MatchRateTables, ProductMatchRow, ProductMatches, StringColumn,
};
use emrship::job::sink::{self, postgres::PostgresSink, sqlite::SqliteSink};

use common::postgres::{server, with_param, TestSchema};

type ProductRow = (String, String, i64, bool);
type RateRow = (String, i64, i64, i64, i64, f64);

fn day(d: u32) -> Day {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

/// `advertisers` × `products` rows with realistic ids; `variant` shifts ids, counts and
/// matches so two variants of a day are told apart.
fn synthetic(day: Day, advertisers: usize, products: usize, variant: usize) -> MatchRateTables {
    let rows = advertisers * products;
    let mut matches = ProductMatches {
        advertisers: (0..advertisers)
            .map(|a| format!("adv-{:05}", a * 3 + variant))
            .collect(),
        product_id: StringColumn::with_capacity(rows, rows * 14),
        ..ProductMatches::default()
    };
    for a in 0..advertisers {
        for p in 0..products {
            matches.advertiser.push(a as u32);
            matches
                .product_id
                .push(&format!("prod-{:09}", p * 7 + variant));
            matches
                .view_count
                .push(1 + ((a * 31 + p * 17 + variant) % 1000) as u64);
            matches.matched.push(!(a + p + variant).is_multiple_of(3));
        }
    }
    MatchRateTables::from_product_matches(day, matches)
}

/// Rows with values that break naive SQL or encoders: quotes, non-ASCII, the largest bigint.
fn awkward(day: Day) -> MatchRateTables {
    let rows = [
        (
            "adv-'; DROP TABLE product_matches; --",
            "prod-\"1\"",
            3,
            true,
        ),
        ("adv-ü-日本", "prod-ß", i64::MAX as u64 - 10, false),
        ("adv-ü-日本", "prod-a\tb\\n", 7, true),
        ("adv-00001", "prod-000000001", 1, false),
    ];
    MatchRateTables::from_product_matches(
        day,
        ProductMatches::from_rows(rows.iter().map(|&(a, p, v, m)| ProductMatchRow {
            advertiser_id: a,
            product_id: p,
            view_count: v,
            matched: m,
        })),
    )
}

fn expected_products(tables: &MatchRateTables) -> Vec<ProductRow> {
    tables
        .product_matches
        .iter()
        .map(|r| {
            (
                r.advertiser_id.to_string(),
                r.product_id.to_string(),
                r.view_count as i64,
                r.matched,
            )
        })
        .collect()
}

fn expected_rates(tables: &MatchRateTables) -> Vec<RateRow> {
    tables
        .advertiser_rates
        .iter()
        .map(|r| {
            (
                r.advertiser_id.clone(),
                r.total_views as i64,
                r.matched_views as i64,
                r.total_products as i64,
                r.matched_products as i64,
                r.match_rate,
            )
        })
        .collect()
}

// --- PostgreSQL ------------------------------------------------------------------------------

fn pg_products(client: &mut postgres::Client, day: Day) -> Vec<ProductRow> {
    client
        .query(
            "SELECT advertiser_id, product_id, view_count, matched FROM product_matches
              WHERE day = $1::text::date ORDER BY advertiser_id, product_id",
            &[&day.to_string()],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn pg_rates(client: &mut postgres::Client, day: Day) -> Vec<RateRow> {
    client
        .query(
            "SELECT advertiser_id, total_views, matched_views, total_products, matched_products,
                    match_rate
               FROM advertiser_match_rates WHERE day = $1::text::date ORDER BY advertiser_id",
            &[&day.to_string()],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

/// (day, rows, sum of view_count) per day in product_matches.
fn pg_day_summary(client: &mut postgres::Client) -> BTreeMap<String, (i64, i64)> {
    client
        .query(
            "SELECT day::text, count(*), sum(view_count)::bigint FROM product_matches
              GROUP BY day ORDER BY day",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

fn summary_of(tables: &MatchRateTables) -> (i64, i64) {
    (
        tables.product_matches.len() as i64,
        tables.product_matches.view_count.iter().sum::<u64>() as i64,
    )
}

/// Writes each of `days` from its own thread through its own sink (opened by `open`), all
/// writes released at once, and fails the test if any write fails.
fn write_at_once<S: DaySink>(days: &[MatchRateTables], open: impl Fn() -> S + Sync) {
    let barrier = Barrier::new(days.len());
    std::thread::scope(|scope| {
        let writers: Vec<_> = days
            .iter()
            .map(|tables| {
                let (barrier, open) = (&barrier, &open);
                scope.spawn(move || {
                    let mut sink = open();
                    barrier.wait();
                    sink.write_day(tables)
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap().unwrap();
        }
    });
}

fn pg_sink(db: &TestSchema) -> PostgresSink {
    PostgresSink::connect_with_env(&db.url, db.env())
        .unwrap_or_else(|e| panic!("cannot open the sink {}: {e}", db.url))
}

#[test]
fn pg_round_trip_keeps_every_column_and_indexes_the_day() {
    let db = TestSchema::new("pg_round_trip");
    let tables = awkward(day(20));
    let report = pg_sink(&db).write_day(&tables).unwrap();
    assert_eq!((report.product_rows, report.advertiser_rows), (4, 3));
    assert_eq!(report.destination, db.url);

    let mut client = db.client();
    assert_eq!(
        pg_products(&mut client, day(20)),
        expected_products(&tables)
    );
    assert_eq!(pg_rates(&mut client, day(20)), expected_rates(&tables));
    let key: String = client
        .query_one(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index
              WHERE indrelid = 'product_matches_20261120'::regclass AND indisprimary",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        key.contains("(day, advertiser_id, product_id)"),
        "primary key of the day's partition: {key}"
    );
    assert_eq!(
        db.tables(),
        [
            "advertiser_match_rates",
            "product_matches",
            "product_matches_20261120"
        ]
    );
}

#[test]
fn pg_rerun_of_a_day_gives_the_same_tables_and_leaves_other_days() {
    let db = TestSchema::new("pg_rerun");
    let mut sink = pg_sink(&db);
    let first = synthetic(day(20), 20, 50, 0);
    let other = synthetic(day(21), 10, 30, 1);
    sink.write_day(&first).unwrap();
    sink.write_day(&other).unwrap();
    let mut client = db.client();
    let before = (
        pg_products(&mut client, day(20)),
        pg_rates(&mut client, day(20)),
        pg_products(&mut client, day(21)),
        pg_rates(&mut client, day(21)),
    );

    // Again, through a new connection as a re-run would.
    pg_sink(&db).write_day(&first).unwrap();
    let after = (
        pg_products(&mut client, day(20)),
        pg_rates(&mut client, day(20)),
        pg_products(&mut client, day(21)),
        pg_rates(&mut client, day(21)),
    );
    assert_eq!(after, before);
    assert_eq!(before.0, expected_products(&first));
    assert_eq!(before.2, expected_products(&other));
    assert_eq!(
        db.tables(),
        [
            "advertiser_match_rates",
            "product_matches",
            "product_matches_20261120",
            "product_matches_20261121"
        ]
    );
}

#[test]
fn pg_second_write_of_a_day_replaces_it_entirely() {
    let db = TestSchema::new("pg_replace");
    let mut sink = pg_sink(&db);
    let old = synthetic(day(20), 30, 40, 0);
    let new = synthetic(day(20), 5, 7, 2);
    let other = synthetic(day(19), 3, 3, 1);
    sink.write_day(&other).unwrap();
    sink.write_day(&old).unwrap();
    sink.write_day(&new).unwrap();
    let mut client = db.client();
    assert_eq!(pg_products(&mut client, day(20)), expected_products(&new));
    assert_eq!(pg_rates(&mut client, day(20)), expected_rates(&new));
    assert_eq!(pg_products(&mut client, day(19)), expected_products(&other));
}

/// The child side of the multi-process tests: writes a synthetic day through the sink
/// factory, with the password from its own environment. Ignored, so a normal run does not count
/// it as a passing test; the parent tests select it with `--ignored --exact`.
#[test]
#[ignore = "entry point of the child processes started by the other tests"]
fn child_writer() {
    let url = std::env::var("EMRSHIP_SINK_CHILD_URL")
        .expect("run by the multi-process tests, which set EMRSHIP_SINK_CHILD_URL");
    let day: Day = std::env::var("EMRSHIP_SINK_CHILD_DAY")
        .unwrap()
        .parse()
        .unwrap();
    let rows: usize = std::env::var("EMRSHIP_SINK_CHILD_ROWS")
        .unwrap()
        .parse()
        .unwrap();
    let tables = synthetic(day, 100, rows.div_ceil(100), 5);
    let result = sink::open(&url).and_then(|mut sink| sink.write_day(&tables));
    match result {
        Ok(report) => println!("child wrote {} rows", report.product_rows),
        Err(error) => panic!("child failed: {error}"),
    }
}

fn child_command(program: Command, url: &str, day: Day, rows: usize) -> Command {
    let mut command = program;
    command
        .args([
            "child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("EMRSHIP_SINK_CHILD_URL", url)
        .env("EMRSHIP_SINK_CHILD_DAY", day.to_string())
        .env("EMRSHIP_SINK_CHILD_ROWS", rows.to_string())
        .env_remove("EMRSHIP_SECRET_PGPASSWORD")
        .env_remove("PGPASSWORD");
    command
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn pg_kill_mid_copy_leaves_the_previous_day_intact() {
    let db = TestSchema::new("pg_kill");
    let previous = synthetic(day(20), 40, 25, 0);
    pg_sink(&db).write_day(&previous).unwrap();

    let app = format!("emrship-kill-{}", db.name);
    let url = with_param(&db.url, "application_name", &app);
    let mut command = child_command(
        Command::new(std::env::current_exe().unwrap()),
        &url,
        day(20),
        2_000_000,
    );
    if let Some(password) = &server().password {
        command.env("PGPASSWORD", password);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut watcher = db.client();
    let copying = |watcher: &mut postgres::Client| -> i64 {
        watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE application_name = $1 AND state = 'active' AND query LIKE 'COPY %'",
                &[&app],
            )
            .unwrap()
            .get(0)
    };
    wait_for("the child's COPY", Duration::from_secs(180), || {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("the writer ended ({status}) before its COPY was seen:\n{stderr}");
        }
        copying(&mut watcher) > 0
    });
    child.kill().unwrap(); // SIGKILL: no chance to roll back or say goodbye
    child.wait().unwrap();

    let mut client = db.client();
    assert_eq!(
        pg_products(&mut client, day(20)),
        expected_products(&previous)
    );
    assert_eq!(pg_rates(&mut client, day(20)), expected_rates(&previous));
    // Once the server has noticed and rolled back, nothing of the load is left behind.
    wait_for("the killed session to end", Duration::from_secs(60), || {
        let sessions: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .unwrap()
            .get(0);
        sessions == 0
    });
    assert_eq!(
        db.tables(),
        [
            "advertiser_match_rates",
            "product_matches",
            "product_matches_20261120"
        ]
    );
    assert_eq!(
        pg_day_summary(&mut client),
        BTreeMap::from([("2026-11-20".to_string(), summary_of(&previous))])
    );
}

#[test]
fn pg_concurrent_writes_of_two_days_both_land() {
    let db = TestSchema::new("pg_concurrent");
    // Create the tables first, as one earlier run would have.
    pg_sink(&db);
    let days = [
        synthetic(day(20), 100, 2_000, 0),
        synthetic(day(21), 80, 2_500, 1),
    ];
    write_at_once(&days, || pg_sink(&db));
    let mut client = db.client();
    assert_eq!(
        pg_day_summary(&mut client),
        BTreeMap::from([
            ("2026-11-20".to_string(), summary_of(&days[0])),
            ("2026-11-21".to_string(), summary_of(&days[1])),
        ])
    );
    for tables in &days {
        assert_eq!(pg_rates(&mut client, tables.day), expected_rates(tables));
    }
}

#[test]
fn pg_two_runs_of_the_same_day_at_once_leave_one_whole_day() {
    let db = TestSchema::new("pg_same_day");
    pg_sink(&db);
    let runs = [
        synthetic(day(20), 50, 1_000, 0),
        synthetic(day(20), 40, 900, 1),
    ];
    write_at_once(&runs, || pg_sink(&db));
    let mut client = db.client();
    let rows = pg_products(&mut client, day(20));
    let rates = pg_rates(&mut client, day(20));
    let whole = runs
        .iter()
        .any(|t| rows == expected_products(t) && rates == expected_rates(t));
    assert!(whole, "the day is not exactly one run's tables");
}

#[test]
fn pg_foreign_product_matches_table_is_reported_not_overwritten() {
    let db = TestSchema::new("pg_foreign");
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE TABLE product_matches (id int); INSERT INTO product_matches VALUES (42);",
        )
        .unwrap();
    match PostgresSink::connect_with_env(&db.url, db.env()) {
        Ok(_) => panic!("accepted a product_matches table it did not create"),
        Err(error) => {
            let text = error.to_string();
            assert!(text.contains("not partitioned by day"), "{text}");
        }
    }
    let kept: i32 = client
        .query_one("SELECT id FROM product_matches", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 42);
    assert_eq!(db.tables(), ["product_matches"]);
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn pg_unreachable_database_is_a_clear_sink_error() {
    let port = closed_port();
    let url = format!("postgres://emrship@127.0.0.1:{port}/ads?connect_timeout=5");
    match sink::open(&url) {
        Ok(_) => panic!("connected to a closed port"),
        Err(JobError::Sink { sink, message }) => {
            assert_eq!(sink, url);
            assert!(message.contains("cannot connect"), "{message}");
            assert!(message.contains("error connecting to server"), "{message}");
        }
        Err(other) => panic!("not a sink error: {other}"),
    }
}

#[test]
fn pg_wrong_password_names_the_server_error() {
    let db = TestSchema::new("pg_wrong_password");
    match PostgresSink::connect_with_env(&db.url, |name| {
        (name == "PGPASSWORD").then(|| "not-the-password".to_string())
    }) {
        Ok(_) => panic!("connected with a wrong password"),
        Err(error) => {
            let text = error.to_string();
            assert!(text.contains("password authentication failed"), "{text}");
            assert!(!text.contains("not-the-password"), "{text}");
        }
    }
    assert!(db.tables().is_empty());
}

#[test]
fn pg_password_in_the_url_is_refused_before_connecting() {
    let db = TestSchema::new("pg_url_password");
    // The right password, so only the refusal keeps the sink from connecting and creating
    // its tables.
    let password = server()
        .password
        .clone()
        .unwrap_or_else(|| "hunter2".into());
    let in_user_info = match db.url.split_once('@') {
        Some((scheme_user, rest)) => format!("{scheme_user}:{password}@{rest}"),
        None => db
            .url
            .replacen("://", &format!("://emrship_test:{password}@"), 1),
    };
    let in_parameter = with_param(&db.url, "password", &password);
    for url in [in_user_info, in_parameter] {
        match PostgresSink::connect_with_env(&url, |_| None) {
            Ok(_) => panic!("accepted {url}"),
            Err(JobError::Usage(message)) => {
                assert!(!message.contains(&password), "{message}");
                assert!(message.contains("PGPASSWORD"), "{message}");
                assert!(message.contains("EMRSHIP_SECRET_PGPASSWORD"), "{message}");
            }
            Err(other) => panic!("not a usage error: {other}"),
        }
    }
    assert!(db.tables().is_empty());
}

#[test]
fn pg_password_from_a_secrets_manager_reference() {
    let db = TestSchema::new("pg_secret");
    let password = server()
        .password
        .clone()
        .expect("the test server has a password (scripts/postgres.sh sets one)");
    let moto = common::moto::Moto::start();
    let (rds_form, missing) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
        let created = client
            .create_secret()
            .name("ads-db")
            .secret_string(
                serde_json::json!({"username": "emrship_test", "password": password}).to_string(),
            )
            .send()
            .await
            .unwrap();
        let arn = created.arn().unwrap().to_string();
        let missing = arn.replace("ads-db", "no-such-secret");
        (arn, missing)
    });

    let run = |arn: &str| {
        child_command(
            moto.command(std::env::current_exe().unwrap()),
            &db.url,
            day(20),
            1_000,
        )
        .env("EMRSHIP_SECRET_PGPASSWORD", arn)
        .output()
        .unwrap()
    };

    let failed = run(&missing);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains(&missing), "{stderr}");
    assert!(stderr.contains("Secrets Manager"), "{stderr}");
    assert!(db.tables().is_empty(), "a failed run created tables");

    let output = run(&rds_form);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut client = db.client();
    assert_eq!(
        pg_day_summary(&mut client),
        BTreeMap::from([(
            "2026-11-20".to_string(),
            summary_of(&synthetic(day(20), 100, 10, 5))
        )])
    );
}

// --- SQLite ----------------------------------------------------------------------------------

fn sqlite_products(path: &std::path::Path, day: Day) -> Vec<ProductRow> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut query = connection
        .prepare(
            "SELECT advertiser_id, product_id, view_count, matched FROM product_matches
              WHERE day = ?1 ORDER BY advertiser_id, product_id",
        )
        .unwrap();
    query
        .query_map([day.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn sqlite_rates(path: &std::path::Path, day: Day) -> Vec<RateRow> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut query = connection
        .prepare(
            "SELECT advertiser_id, total_views, matched_views, total_products, matched_products,
                    match_rate
               FROM advertiser_match_rates WHERE day = ?1 ORDER BY advertiser_id",
        )
        .unwrap();
    query
        .query_map([day.to_string()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn sqlite_round_trip_keeps_every_column_in_a_new_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not/yet/there/match-rate.db");
    let tables = awkward(day(20));
    let mut sink = match sink::open(&format!("sqlite://{}", path.display())) {
        Ok(sink) => sink,
        Err(e) => panic!("{e}"),
    };
    let report = sink.write_day(&tables).unwrap();
    assert_eq!(report.destination, format!("sqlite://{}", path.display()));
    assert_eq!((report.product_rows, report.advertiser_rows), (4, 3));
    assert_eq!(sqlite_products(&path, day(20)), expected_products(&tables));
    assert_eq!(sqlite_rates(&path, day(20)), expected_rates(&tables));
}

#[test]
fn sqlite_rerun_and_replacement_touch_only_their_day() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("match-rate.db");
    let old = synthetic(day(20), 20, 30, 0);
    let new = synthetic(day(20), 4, 6, 2);
    let other = synthetic(day(21), 5, 5, 1);
    let mut sink = SqliteSink::open(&path).unwrap();
    sink.write_day(&old).unwrap();
    sink.write_day(&other).unwrap();
    SqliteSink::open(&path).unwrap().write_day(&old).unwrap();
    assert_eq!(sqlite_products(&path, day(20)), expected_products(&old));
    assert_eq!(sqlite_rates(&path, day(20)), expected_rates(&old));

    sink.write_day(&new).unwrap();
    assert_eq!(sqlite_products(&path, day(20)), expected_products(&new));
    assert_eq!(sqlite_rates(&path, day(20)), expected_rates(&new));
    assert_eq!(sqlite_products(&path, day(21)), expected_products(&other));
    assert_eq!(sqlite_rates(&path, day(21)), expected_rates(&other));
}

#[test]
fn sqlite_two_days_written_at_once_both_land() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("match-rate.db");
    let days = [
        synthetic(day(20), 50, 2_000, 0),
        synthetic(day(21), 40, 2_000, 1),
    ];
    write_at_once(&days, || SqliteSink::open(&path).unwrap());
    for tables in &days {
        assert_eq!(
            sqlite_products(&path, tables.day),
            expected_products(tables)
        );
        assert_eq!(sqlite_rates(&path, tables.day), expected_rates(tables));
    }
}

// TLS: the test server (scripts/postgres.sh) accepts TLS with a certificate for 127.0.0.1 signed
// by a throwaway CA, and plain connections too; `pg_stat_ssl` shows which one a session uses.

fn test_ca() -> String {
    server()
        .ca
        .as_ref()
        .expect(
            "the TLS tests need the CA of the test server's certificate: run scripts/test.sh, \
             or set EMRSHIP_TEST_PG_CA for a server given by EMRSHIP_TEST_PG_URL",
        )
        .display()
        .to_string()
}

/// `db.url` with `params` and a unique application_name to find the sink's session by.
fn tls_url(db: &TestSchema, params: &[(&str, &str)]) -> (String, String) {
    let application = format!("emrship-tls-{}", db.name);
    let mut url = with_param(&db.url, "application_name", &application);
    for (key, value) in params {
        url = with_param(&url, key, value);
    }
    (url, application)
}

/// Whether the session of `application` is encrypted (`None`: no such session).
fn session_uses_tls(client: &mut postgres::Client, application: &str) -> Option<bool> {
    client
        .query_opt(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
              WHERE a.application_name = $1",
            &[&application],
        )
        .unwrap()
        .map(|row| row.get(0))
}

/// Opens the sink on `url`, checks whether its session is encrypted, writes a day and checks
/// the rows landed.
fn write_a_day_checking_tls(db: &TestSchema, url: &str, application: &str, tls: bool) {
    let mut sink = PostgresSink::connect_with_env(url, db.env())
        .unwrap_or_else(|e| panic!("cannot open the sink {url}: {e}"));
    let mut client = db.client();
    assert_eq!(session_uses_tls(&mut client, application), Some(tls));
    let tables = awkward(day(21));
    let report = sink.write_day(&tables).unwrap();
    assert_eq!((report.product_rows, report.advertiser_rows), (4, 3));
    assert_eq!(
        pg_products(&mut client, day(21)),
        expected_products(&tables)
    );
    assert_eq!(pg_rates(&mut client, day(21)), expected_rates(&tables));
}

#[test]
fn pg_tls_verify_full_with_the_ca_writes_a_day_over_tls() {
    let db = TestSchema::new("pg_tls_verify_full");
    let ca = test_ca();
    let (url, application) = tls_url(
        &db,
        &[("sslmode", "verify-full"), ("sslrootcert", ca.as_str())],
    );
    write_a_day_checking_tls(&db, &url, &application, true);
}

#[test]
fn pg_tls_verify_ca_with_the_ca_writes_a_day_over_tls() {
    let db = TestSchema::new("pg_tls_verify_ca");
    let ca = test_ca();
    let (url, application) = tls_url(&db, &[("sslmode", "verify-ca"), ("sslrootcert", &ca)]);
    write_a_day_checking_tls(&db, &url, &application, true);
}

#[test]
fn pg_tls_verify_full_without_the_ca_is_not_trusted() {
    let db = TestSchema::new("pg_tls_untrusted");
    let (url, application) = tls_url(&db, &[("sslmode", "verify-full")]);
    match PostgresSink::connect_with_env(&url, db.env()) {
        Ok(_) => panic!("trusted a certificate from a throwaway CA without sslrootcert"),
        Err(JobError::Sink { message, .. }) => {
            assert!(message.contains("not trusted"), "{message}");
            assert!(message.contains("sslrootcert="), "{message}");
            let password = server().password.clone().unwrap_or_default();
            assert!(
                password.is_empty() || !message.contains(&password),
                "{message}"
            );
        }
        Err(other) => panic!("not a sink error: {other}"),
    }
    assert_eq!(session_uses_tls(&mut db.client(), &application), None);
    assert!(db.tables().is_empty());
}

#[test]
fn pg_tls_require_encrypts_without_the_ca() {
    let db = TestSchema::new("pg_tls_require");
    let (url, application) = tls_url(&db, &[("sslmode", "require")]);
    write_a_day_checking_tls(&db, &url, &application, true);
}

#[test]
fn pg_tls_prefer_is_the_default_and_encrypts_when_offered() {
    let db = TestSchema::new("pg_tls_prefer");
    let (url, application) = tls_url(&db, &[]);
    write_a_day_checking_tls(&db, &url, &application, true);
}

#[test]
fn pg_tls_disable_still_connects_in_plain_text() {
    let db = TestSchema::new("pg_tls_disable");
    let (url, application) = tls_url(&db, &[("sslmode", "disable")]);
    write_a_day_checking_tls(&db, &url, &application, false);
}

#[test]
fn pg_tls_required_but_refused_by_the_server_is_a_clear_error() {
    // A server that answers the TLS request with 'N' (no TLS), as PostgreSQL with ssl=off does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut socket, _) = listener.accept().unwrap();
        let mut request = [0u8; 8];
        socket.read_exact(&mut request).unwrap();
        // SSLRequest: length 8, code 80877103.
        assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
        socket.write_all(b"N").unwrap();
        request
    });
    let url = format!("postgres://emrship@127.0.0.1:{port}/ads?sslmode=require&connect_timeout=5");
    match PostgresSink::connect_with_env(&url, |_| None) {
        Ok(_) => panic!("connected without TLS under sslmode=require"),
        Err(JobError::Sink { message, .. }) => {
            assert!(message.contains("does not accept TLS"), "{message}");
            assert!(message.contains("sslmode=require"), "{message}");
        }
        Err(other) => panic!("not a sink error: {other}"),
    }
    server.join().unwrap();
}

#[test]
fn pg_unknown_ssl_mode_is_a_usage_error() {
    match sink::open("postgres://emrship@127.0.0.1:1/ads?sslmode=verify-everything") {
        Ok(_) => panic!("accepted an unknown sslmode"),
        Err(JobError::Usage(message)) => {
            assert!(message.contains("sslmode=verify-everything"), "{message}");
            assert!(message.contains("verify-full"), "{message}");
        }
        Err(other) => panic!("not a usage error: {other}"),
    }
}
