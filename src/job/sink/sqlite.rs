//! SQLite sink: `sqlite://PATH`, the embedded default for local runs. Same tables and keys as
//! the PostgreSQL sink (`day` as ISO text, `matched` as 0/1), the day replaced in one
//! transaction (delete the day, insert its rows).
//!
//! The database runs in WAL mode with a busy timeout, and each write takes the write lock up
//! front (`BEGIN IMMEDIATE`), so a concurrent run of another day waits for this one instead of
//! failing, and readers keep seeing the previous state until the commit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};

use crate::job::model::{DaySink, JobError, MatchRateTables, SinkReport};

/// How long a write waits for another writer (a run of another day) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(600);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS product_matches (
    day TEXT NOT NULL,
    advertiser_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    view_count INTEGER NOT NULL,
    matched INTEGER NOT NULL,
    PRIMARY KEY (day, advertiser_id, product_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS advertiser_match_rates (
    day TEXT NOT NULL,
    advertiser_id TEXT NOT NULL,
    total_views INTEGER NOT NULL,
    matched_views INTEGER NOT NULL,
    total_products INTEGER NOT NULL,
    matched_products INTEGER NOT NULL,
    match_rate REAL NOT NULL,
    PRIMARY KEY (day, advertiser_id)
) WITHOUT ROWID;
";

pub struct SqliteSink {
    connection: Connection,
    destination: String,
}

impl SqliteSink {
    /// Opens (creating it and its directory if missing) the database at `path`, in WAL mode,
    /// with the tables created if missing.
    pub fn open(path: &Path) -> Result<Self, JobError> {
        let destination = format!("sqlite://{}", path.display());
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            JobError::sink(&destination, format!("{what}: {e}"))
        };
        if path.as_os_str().is_empty() {
            return Err(JobError::Usage(
                "sink sqlite://: no database path; write sqlite://PATH, e.g. \
                 sqlite://out/match-rate.db"
                    .into(),
            ));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                fail(
                    &format!("cannot create the directory {}", parent.display()),
                    &e,
                )
            })?;
        }
        let connection = Connection::open(path).map_err(|e| fail("cannot open", &e))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| fail("cannot set the busy timeout", &e))?;
        // journal_mode answers with the mode in effect; anything but WAL (e.g. a network file
        // system that cannot share memory) would make readers block the writer.
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| fail("cannot switch to WAL mode", &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(
                "cannot switch to WAL mode",
                &format!("the database stays in {mode} mode; put it on a local disk"),
            ));
        }
        connection
            .execute_batch("PRAGMA synchronous = NORMAL;")
            .and_then(|_| connection.execute_batch(SCHEMA))
            .map_err(|e| fail("cannot create the tables", &e))?;
        Ok(SqliteSink {
            connection,
            destination,
        })
    }

    /// The file this sink writes.
    pub fn path(&self) -> Option<PathBuf> {
        self.connection.path().map(PathBuf::from)
    }
}

impl DaySink for SqliteSink {
    fn write_day(&mut self, tables: &MatchRateTables) -> Result<SinkReport, JobError> {
        let day = tables.day.format("%Y-%m-%d").to_string();
        replace_day(&mut self.connection, &day, tables).map_err(|e| {
            JobError::sink(
                &self.destination,
                format!("day {day} was not written (the previous state is unchanged): {e}"),
            )
        })?;
        Ok(SinkReport {
            destination: self.destination.clone(),
            product_rows: tables.product_matches.len() as u64,
            advertiser_rows: tables.advertiser_rates.len() as u64,
        })
    }
}

fn replace_day(
    connection: &mut Connection,
    day: &str,
    tables: &MatchRateTables,
) -> Result<(), String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    tx.execute("DELETE FROM product_matches WHERE day = ?1", [day])
        .map_err(sql)?;
    tx.execute("DELETE FROM advertiser_match_rates WHERE day = ?1", [day])
        .map_err(sql)?;
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO product_matches (day, advertiser_id, product_id, view_count, matched)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql)?;
        for row in tables.product_matches.iter() {
            let views = integer(row.view_count, "view_count", row.advertiser_id)?;
            insert
                .execute(params![
                    day,
                    row.advertiser_id,
                    row.product_id,
                    views,
                    row.matched
                ])
                .map_err(|e| format!("({}, {}): {e}", row.advertiser_id, row.product_id))?;
        }
        let mut insert = tx
            .prepare(
                "INSERT INTO advertiser_match_rates (day, advertiser_id, total_views,
                     matched_views, total_products, matched_products, match_rate)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(sql)?;
        for rate in &tables.advertiser_rates {
            let key = &rate.advertiser_id;
            insert
                .execute(params![
                    day,
                    key,
                    integer(rate.total_views, "total_views", key)?,
                    integer(rate.matched_views, "matched_views", key)?,
                    integer(rate.total_products, "total_products", key)?,
                    integer(rate.matched_products, "matched_products", key)?,
                    rate.match_rate,
                ])
                .map_err(|e| format!("advertiser {key}: {e}"))?;
        }
    }
    tx.commit().map_err(sql)
}

fn integer(value: u64, column: &str, key: &str) -> Result<i64, String> {
    i64::try_from(value).map_err(|_| {
        format!("{column} {value} of {key} does not fit SQLite's INTEGER (at most 2^63-1)")
    })
}
