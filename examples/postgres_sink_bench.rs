//! How long the PostgreSQL sink takes to land a day, against `psql \copy` of the same rows
//! into a bare table and into a table with the primary key (the issue's yardsticks).
//!
//! ```text
//! PGPASSWORD=… cargo run --release --example postgres_sink_bench -- \
//!     postgres://USER@HOST:PORT/DB [ROWS]
//! ```
//!
//! Needs `psql` on PATH. Works in a schema `emrship_bench` (dropped first), writes the CSV to
//! the system temp directory. The target is: sink ≤ 2 × bare `\copy`.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use emrship::job::model::{DaySink, MatchRateTables, ProductMatches, StringColumn};
use emrship::job::sink::postgres::PostgresSink;

const SCHEMA: &str = "emrship_bench";
const PRODUCTS_PER_ADVERTISER: usize = 4_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| {
        eprintln!("usage: postgres_sink_bench postgres://USER@HOST:PORT/DB [ROWS]");
        std::process::exit(2)
    });
    let rows: usize = args
        .next()
        .map(|n| n.parse().expect("ROWS is a number"))
        .unwrap_or(8_000_000);
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();

    let started = Instant::now();
    let tables = synthetic(day, rows);
    eprintln!(
        "generated {} rows in {:.1?}",
        tables.product_matches.len(),
        started.elapsed()
    );
    let csv = std::env::temp_dir().join(format!("emrship-bench-{}.csv", std::process::id()));
    write_csv(&tables, &csv);

    psql(
        &url,
        &format!(
            "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};
             CREATE TABLE {SCHEMA}.bare (day date, advertiser_id text, product_id text,
                 view_count bigint, matched boolean);
             CREATE TABLE {SCHEMA}.keyed (day date, advertiser_id text, product_id text,
                 view_count bigint, matched boolean,
                 PRIMARY KEY (day, advertiser_id, product_id));"
        ),
    );
    let copy = |table: &str| {
        timed(|| {
            psql(
                &url,
                &format!(
                    "\\copy {SCHEMA}.{table} FROM '{}' (FORMAT csv)",
                    csv.display()
                ),
            )
        })
    };
    let bare = copy("bare");
    let keyed = copy("keyed");
    let _ = std::fs::remove_file(&csv);

    let separator = if url.contains('?') { '&' } else { '?' };
    let sink_url = format!("{url}{separator}options=-csearch_path%3D{SCHEMA}");
    let mut sink = PostgresSink::connect(&sink_url).unwrap_or_else(|e| panic!("{e}"));
    let first = timed(|| {
        sink.write_day(&tables).unwrap_or_else(|e| panic!("{e}"));
    });
    let rerun = timed(|| {
        sink.write_day(&tables).unwrap_or_else(|e| panic!("{e}"));
    });

    let mut report = String::new();
    let ratio = |d: Duration| d.as_secs_f64() / bare.as_secs_f64();
    writeln!(report, "rows: {}", tables.product_matches.len()).unwrap();
    writeln!(report, "psql \\copy, bare table:        {bare:>8.2?}").unwrap();
    writeln!(
        report,
        "psql \\copy, with primary key:   {keyed:>8.2?}  ({:.2}x bare)",
        ratio(keyed)
    )
    .unwrap();
    writeln!(
        report,
        "sink write_day (first):        {first:>8.2?}  ({:.2}x bare)",
        ratio(first)
    )
    .unwrap();
    writeln!(
        report,
        "sink write_day (re-run):       {rerun:>8.2?}  ({:.2}x bare)",
        ratio(rerun)
    )
    .unwrap();
    print!("{report}");
    psql(&url, &format!("DROP SCHEMA {SCHEMA} CASCADE"));
}

/// `rows` rows for advertisers `adv-NNNNN` with products `prod-NNNNNNNNN`, sorted by key.
fn synthetic(day: NaiveDate, rows: usize) -> MatchRateTables {
    let advertisers = rows.div_ceil(PRODUCTS_PER_ADVERTISER);
    let mut matches = ProductMatches {
        advertisers: (0..advertisers)
            .map(|a| format!("adv-{:05}", a * 7 + 3))
            .collect(),
        product_id: StringColumn::with_capacity(rows, rows * 14),
        ..ProductMatches::default()
    };
    let mut id = String::new();
    for row in 0..rows {
        let (a, p) = (row / PRODUCTS_PER_ADVERTISER, row % PRODUCTS_PER_ADVERTISER);
        id.clear();
        write!(id, "prod-{:09}", p * 240_007 + (a * 13) % 240_000).unwrap();
        matches.advertiser.push(a as u32);
        matches.product_id.push(&id);
        matches
            .view_count
            .push(1 + ((a * 31 + p * 17) % 500) as u64);
        matches.matched.push(!(a + p).is_multiple_of(5));
    }
    MatchRateTables::from_product_matches(day, matches)
}

fn write_csv(tables: &MatchRateTables, path: &std::path::Path) {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    for row in tables.product_matches.iter() {
        writeln!(
            out,
            "{},{},{},{},{}",
            tables.day, row.advertiser_id, row.product_id, row.view_count, row.matched
        )
        .unwrap();
    }
    out.flush().unwrap();
}

fn psql(url: &str, command: &str) {
    let status = Command::new("psql")
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(["-c", "SET client_min_messages = warning", "-c", command])
        .status()
        .expect("run psql");
    assert!(status.success(), "psql failed: {command}");
}

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}
