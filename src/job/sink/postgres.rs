//! PostgreSQL sink: `postgres://USER@HOST:PORT/DB?…` (the libpq URL parameters the `postgres`
//! crate parses: `connect_timeout`, `application_name`, `options`, …), plus libpq's `sslmode`
//! (disable, prefer, require, verify-ca, verify-full) and `sslrootcert` (see [`tls`]).
//!
//! Layout: `product_matches` is partitioned by LIST (day), one partition per day named
//! `product_matches_YYYYMMDD`, keyed by (day, advertiser_id, product_id); `advertiser_match_rates`
//! is a plain table keyed by (day, advertiser_id).
//!
//! A day is replaced in ONE transaction, so a crash or a lost connection leaves the previous
//! state and re-running a day gives the same tables:
//! 1. create a fresh, unindexed load table with `CHECK (day = D)` (so ATTACH skips its scan);
//! 2. binary COPY the rows into it (the bare-table COPY speed);
//! 3. build its primary key in one sort (much cheaper than maintaining it row by row);
//! 4. lock `product_matches`, drop the day's old partition, attach the new one (the parent's
//!    key adopts the partition's index instead of building another);
//! 5. delete-day + binary COPY `advertiser_match_rates`, commit.
//!
//! Two runs for different days overlap freely in steps 1-3 (nothing shared is locked) and
//! serialise on the short step 4-5; every run takes the locks in the same order
//! (`product_matches`, then `advertiser_match_rates`), so they cannot deadlock.
//!
//! The password never comes from the URL (it would show in the plan, the step and the console):
//! it is PGPASSWORD, or EMRSHIP_SECRET_PGPASSWORD naming a Secrets Manager secret (a plain
//! string or the RDS JSON form `{"username": …, "password": …}`).

use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};

mod tls;

use crate::job::model::{
    AdvertiserRate, Day, DaySink, JobError, MatchRateTables, ProductMatches, SinkReport,
};

/// Environment variable holding the password in plain text (libpq's name).
pub const PASSWORD_ENV: &str = "PGPASSWORD";
/// Environment variable holding a Secrets Manager secret id or ARN whose value is the password;
/// the plan renders `job.secrets.PGPASSWORD` into it.
pub const SECRET_PASSWORD_ENV: &str = "EMRSHIP_SECRET_PGPASSWORD";

/// How long a run waits for another run's swap (or a long reader) before giving up.
const LOCK_TIMEOUT: &str = "2min";
/// Upper bound for any one statement: generous for a COPY of tens of millions of rows, but a
/// hung server does not hold the job forever.
const STATEMENT_TIMEOUT: &str = "1h";
/// Memory for the one-sort index build of a day's partition.
const MAINTENANCE_WORK_MEM: &str = "256MB";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// COPY data is sent in chunks of about this size.
const COPY_CHUNK: usize = 1 << 20;

const PRODUCT_MATCHES: &str = "product_matches";
const ADVERTISER_MATCH_RATES: &str = "advertiser_match_rates";

/// Ids are opaque: bytewise ("C") collation keeps the key order the job sorts in and makes the
/// index build several times faster than a locale-aware collation.
const PRODUCT_MATCHES_COLUMNS: &str = "day date NOT NULL, \
     advertiser_id text COLLATE \"C\" NOT NULL, \
     product_id text COLLATE \"C\" NOT NULL, \
     view_count bigint NOT NULL, \
     matched boolean NOT NULL";

pub struct PostgresSink {
    client: Client,
    /// The URL as given (it never holds a password: `connect` refuses those).
    destination: String,
}

impl PostgresSink {
    /// Connects to `url` with the password from the process environment, and creates the
    /// tables if they are missing.
    pub fn connect(url: &str) -> Result<Self, JobError> {
        Self::connect_with_env(url, |name| std::env::var(name).ok())
    }

    /// As [`PostgresSink::connect`], reading PGPASSWORD / EMRSHIP_SECRET_PGPASSWORD through
    /// `env` (the AWS SDK still reads its own settings from the process environment).
    pub fn connect_with_env(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, JobError> {
        let destination = redact_url(url);
        let (url, tls_options) = tls::split_tls_params(url)
            .map_err(|e| JobError::Usage(format!("sink {destination}: {e}")))?;
        let url = url.as_str();
        let mut config = Config::from_str(url).map_err(|e| {
            JobError::Usage(format!(
                "sink {destination}: not a PostgreSQL URL ({}); expected \
                 postgres://USER@HOST:PORT/DATABASE[?PARAM=VALUE&…]",
                describe(&e)
            ))
        })?;
        if config.get_password().is_some() {
            return Err(JobError::Usage(format!(
                "sink {destination}: the URL holds a password; remove it and put the password \
                 in {PASSWORD_ENV}, or the Secrets Manager ARN of the secret holding it in \
                 {SECRET_PASSWORD_ENV} (the plan does that for `job.secrets.PGPASSWORD`)"
            )));
        }
        if let Some(password) = resolve_password(&destination, &env)? {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("emrship-job");
        }
        let tls_config = tls::client_config(&tls_options)
            .map_err(|e| JobError::Usage(format!("sink {destination}: {e}")))?;
        // The `postgres` crate's modes: the verify modes are `require` plus our verifier.
        config.ssl_mode(match tls_options.mode {
            tls::SslMode::Disable => SslMode::Disable,
            tls::SslMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        let connected = match tls_config {
            None => config.connect(NoTls),
            Some(tls_config) => config.connect(tls::MakeRustlsConnect::new(tls_config)),
        };
        let mut client = connected.map_err(|e| {
            let host = config
                .get_hosts()
                .iter()
                .find_map(|host| match host {
                    Host::Tcp(name) => Some(name.as_str()),
                    #[allow(unreachable_patterns)]
                    _ => None,
                })
                .unwrap_or("the server");
            let message = match tls::explain_failure(&e, &tls_options, host) {
                Some(tls_problem) => format!("cannot connect over TLS: {tls_problem}"),
                None => format!(
                    "cannot connect: {}; check that the server is running and reachable, the \
                     user and database exist, and the password ({PASSWORD_ENV} or \
                     {SECRET_PASSWORD_ENV}) is right",
                    describe(&e)
                ),
            };
            JobError::sink(&destination, message)
        })?;
        ensure_schema(&mut client).map_err(|e| {
            JobError::sink(
                &destination,
                format!("cannot create the tables: {}", describe(&e)),
            )
        })?;
        Ok(PostgresSink {
            client,
            destination,
        })
    }
}

impl DaySink for PostgresSink {
    fn write_day(&mut self, tables: &MatchRateTables) -> Result<SinkReport, JobError> {
        let day = check_day(&self.destination, tables.day)?;
        replace_day(&mut self.client, &day, tables).map_err(|e| {
            JobError::sink(
                &self.destination,
                format!(
                    "day {} was not written (the previous state is unchanged): {}",
                    tables.day,
                    describe(&e)
                ),
            )
        })?;
        Ok(SinkReport {
            destination: self.destination.clone(),
            product_rows: tables.product_matches.len() as u64,
            advertiser_rows: tables.advertiser_rates.len() as u64,
        })
    }
}

/// The day in the forms SQL needs: a quoted date literal and the partition name. Both are
/// built from digits only, so they are safe to splice into statements.
struct DayNames {
    literal: String,
    partition: String,
}

fn check_day(destination: &str, day: Day) -> Result<DayNames, JobError> {
    if !(1..=9999).contains(&day.year()) {
        return Err(JobError::sink(
            destination,
            format!("day {day} is outside the years 1-9999 a table partition can be named for"),
        ));
    }
    Ok(DayNames {
        literal: format!("'{}'", day.format("%Y-%m-%d")),
        partition: format!("{PRODUCT_MATCHES}_{}", day.format("%Y%m%d")),
    })
}

/// Creates the tables if missing. Serialised on an advisory lock so two first runs do not race
/// on `CREATE TABLE IF NOT EXISTS` (which is not atomic against itself).
fn ensure_schema(client: &mut Client) -> Result<(), SinkFailure> {
    let mut tx = client.transaction()?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';
         SELECT pg_advisory_xact_lock(hashtext('emrship sink schema'));
         CREATE TABLE IF NOT EXISTS {PRODUCT_MATCHES} ({PRODUCT_MATCHES_COLUMNS}, \
             PRIMARY KEY (day, advertiser_id, product_id)) PARTITION BY LIST (day);
         CREATE TABLE IF NOT EXISTS {ADVERTISER_MATCH_RATES} (
             day date NOT NULL,
             advertiser_id text COLLATE \"C\" NOT NULL,
             total_views bigint NOT NULL,
             matched_views bigint NOT NULL,
             total_products bigint NOT NULL,
             matched_products bigint NOT NULL,
             match_rate double precision NOT NULL,
             PRIMARY KEY (day, advertiser_id));"
    ))?;
    let partitioned: bool = tx
        .query_one(
            "SELECT relkind = 'p' FROM pg_class WHERE oid = $1::text::regclass",
            &[&PRODUCT_MATCHES],
        )?
        .get(0);
    if !partitioned {
        return Err(SinkFailure::Value(format!(
            "table {PRODUCT_MATCHES} exists but is not partitioned by day, so it was not \
             created by this sink; rename or drop it, or point the sink at another schema \
             (options=-csearch_path=SCHEMA in the URL)"
        )));
    }
    tx.commit()?;
    Ok(())
}

fn replace_day(
    client: &mut Client,
    day: &DayNames,
    tables: &MatchRateTables,
) -> Result<(), SinkFailure> {
    let mut tx = client.transaction()?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';
         SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}';
         SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}';
         SET LOCAL DateStyle = 'ISO, YMD';"
    ))?;
    let backend: i32 = tx.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    // Unique per session, so two runs of the same day load side by side; they then take
    // turns at the swap and the later one wins, whole.
    let load = format!("{}_load_{backend}", day.partition);
    let literal = &day.literal;
    tx.batch_execute(&format!(
        "CREATE TABLE {load} ({PRODUCT_MATCHES_COLUMNS}, \
             CONSTRAINT {load_day} CHECK (day = DATE {literal}))",
        load = quote_ident(&load),
        load_day = quote_ident(&format!("{load}_day")),
    ))?;
    let writer = tx.copy_in(&format!(
        "COPY {} (day, advertiser_id, product_id, view_count, matched) FROM STDIN (FORMAT binary)",
        quote_ident(&load)
    ))?;
    encode_product_matches(tables.day, &tables.product_matches, writer)?.finish()?;
    tx.batch_execute(&format!(
        "ALTER TABLE {load} ADD CONSTRAINT {load_key} PRIMARY KEY (day, advertiser_id, product_id);
         ANALYZE {load};
         LOCK TABLE {PRODUCT_MATCHES} IN ACCESS EXCLUSIVE MODE;",
        load = quote_ident(&load),
        load_key = quote_ident(&format!("{load}_pkey")),
    ))?;
    // Whatever partition holds the day now (by its bound, not its name).
    let old: Vec<String> = tx
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname)
               FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE i.inhparent = $1::text::regclass
                AND pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (%L)', $2::text)",
            &[&PRODUCT_MATCHES, &literal.trim_matches('\'')],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for table in &old {
        tx.batch_execute(&format!("DROP TABLE {table}"))?;
    }
    tx.batch_execute(&format!(
        "ALTER TABLE {load} RENAME TO {partition};
         ALTER INDEX {load_key} RENAME TO {partition_key};
         ALTER TABLE {PRODUCT_MATCHES} ATTACH PARTITION {partition} FOR VALUES IN ({literal});
         DELETE FROM {ADVERTISER_MATCH_RATES} WHERE day = DATE {literal};",
        load = quote_ident(&load),
        load_key = quote_ident(&format!("{load}_pkey")),
        partition = quote_ident(&day.partition),
        partition_key = quote_ident(&format!("{}_pkey", day.partition)),
    ))?;
    let writer = tx.copy_in(&format!(
        "COPY {ADVERTISER_MATCH_RATES} (day, advertiser_id, total_views, matched_views, \
         total_products, matched_products, match_rate) FROM STDIN (FORMAT binary)"
    ))?;
    encode_advertiser_rates(tables.day, &tables.advertiser_rates, writer)?.finish()?;
    tx.commit()?;
    Ok(())
}

/// Why a write failed: the database said no, the connection broke mid-COPY, or a value does
/// not fit its column (the COPY is then abandoned, which rolls the transaction back).
#[derive(Debug)]
enum SinkFailure {
    Postgres(postgres::Error),
    Io(std::io::Error),
    Value(String),
}

impl From<postgres::Error> for SinkFailure {
    fn from(e: postgres::Error) -> Self {
        SinkFailure::Postgres(e)
    }
}

impl std::fmt::Display for SinkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkFailure::Postgres(e) => f.write_str(&describe(e)),
            SinkFailure::Io(e) => write!(f, "the connection broke during COPY: {}", describe(e)),
            SinkFailure::Value(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SinkFailure {}

/// An error with its causes: the postgres crate's own message is only the kind ("db error"),
/// the server's message, detail and hint are in the source.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(cause_text.trim_end());
        }
        source = cause.source();
    }
    text.replace('\n', "; ")
}

/// Double-quotes an SQL identifier (doubling embedded quotes).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` without a password: `postgres://u:secret@h/db?password=x` → `postgres://u@h/db`.
/// Used for every message, so a password given by mistake is never printed.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = match base.split_once("://") {
        Some((scheme, rest)) => {
            // The authority ends at the first '/', the user info at its last '@'.
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let authority = match authority.rsplit_once('@') {
                Some((user_info, host)) => {
                    let user = user_info.split(':').next().unwrap_or("");
                    format!("{user}@{host}")
                }
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_string(),
    };
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.to_ascii_lowercase().starts_with("password="))
            .collect();
        if !kept.is_empty() {
            redacted.push('?');
            redacted.push_str(&kept.join("&"));
        }
    }
    redacted
}

/// The password: PGPASSWORD if set, else the secret EMRSHIP_SECRET_PGPASSWORD names, else none
/// (the server may not ask for one).
fn resolve_password(
    destination: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, JobError> {
    if let Some(password) = env(PASSWORD_ENV).filter(|p| !p.is_empty()) {
        return Ok(Some(password));
    }
    let Some(secret_id) = env(SECRET_PASSWORD_ENV).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let secret = fetch_secret_string(&secret_id).map_err(|message| {
        JobError::sink(
            destination,
            format!(
                "cannot read the password from Secrets Manager secret {secret_id} \
                 ({SECRET_PASSWORD_ENV}): {message}"
            ),
        )
    })?;
    password_from_secret(&secret)
        .map(Some)
        .map_err(|message| JobError::sink(destination, format!("secret {secret_id}: {message}")))
}

/// A password from a secret's string: the RDS JSON form `{"username": …, "password": …}`, or the
/// whole string as the password.
pub fn password_from_secret(secret: &str) -> Result<String, String> {
    if secret.trim_start().starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(secret)
            .map_err(|e| format!("looks like JSON but does not parse ({e})"))?;
        return match value.get("password") {
            Some(serde_json::Value::String(password)) => Ok(password.clone()),
            _ => Err(
                "is a JSON object without a string \"password\" field; store the password \
                 itself, or the RDS form {\"username\": …, \"password\": …}"
                    .into(),
            ),
        };
    }
    if secret.is_empty() {
        return Err("is empty".into());
    }
    Ok(secret.to_string())
}

/// The region of a Secrets Manager ARN (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`),
/// so a reference works without AWS_REGION being set.
pub fn region_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("secretsmanager"), Some(region)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    (!region.is_empty()).then_some(region)
}

fn fetch_secret_string(secret_id: &str) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = region_of_arn(secret_id) {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        let config = loader.load().await;
        let client = aws_sdk_secretsmanager::Client::new(&config);
        let output = client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "{}; check the ARN and that the job's role may call \
                     secretsmanager:GetSecretValue on it",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            })?;
        output.secret_string().map(str::to_string).ok_or_else(|| {
            "holds binary data, not a string; store the password as a SecretString".to_string()
        })
    })
}

// --- PostgreSQL binary COPY format -----------------------------------------------------------
// https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4: a header, then per
// row a 16-bit field count and per field a 32-bit length and the value in its binary send
// format (big-endian), then a -1 trailer.

const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const POSTGRES_EPOCH: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();

fn date_days(day: Day) -> i32 {
    (day - POSTGRES_EPOCH).num_days() as i32
}

fn bigint(value: u64, column: &str, key: &str) -> Result<i64, SinkFailure> {
    i64::try_from(value).map_err(|_| {
        SinkFailure::Value(format!(
            "{column} {value} of {key} does not fit PostgreSQL's bigint (at most 2^63-1)"
        ))
    })
}

/// Rows in COPY binary format, streamed to `out` in chunks of about [`COPY_CHUNK`] bytes (the
/// whole day encoded at once would double the job's memory).
struct CopyRows<W: Write> {
    buf: Vec<u8>,
    out: W,
}

impl<W: Write> CopyRows<W> {
    fn new(out: W) -> Self {
        let mut buf = Vec::with_capacity(COPY_CHUNK + 4096);
        buf.extend_from_slice(COPY_HEADER);
        CopyRows { buf, out }
    }
    fn row(&mut self, fields: i16) -> Result<(), SinkFailure> {
        if self.buf.len() >= COPY_CHUNK {
            self.out.write_all(&self.buf).map_err(SinkFailure::Io)?;
            self.buf.clear();
        }
        self.buf.extend_from_slice(&fields.to_be_bytes());
        Ok(())
    }
    fn date(&mut self, days: i32) {
        self.buf.extend_from_slice(&4i32.to_be_bytes());
        self.buf.extend_from_slice(&days.to_be_bytes());
    }
    fn text(&mut self, value: &str) {
        self.buf
            .extend_from_slice(&(value.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(value.as_bytes());
    }
    fn int8(&mut self, value: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
    }
    fn float8(&mut self, value: f64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_bits().to_be_bytes());
    }
    fn bool(&mut self, value: bool) {
        self.buf.extend_from_slice(&1i32.to_be_bytes());
        self.buf.push(value as u8);
    }
    /// Writes the trailer and what is left; gives `out` back (to finish the COPY).
    fn finish(mut self) -> Result<W, SinkFailure> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.out.write_all(&self.buf).map_err(SinkFailure::Io)?;
        Ok(self.out)
    }
}

/// Writes `product_matches` rows of `day` to `out` in COPY binary format.
fn encode_product_matches<W: Write>(
    day: Day,
    rows: &ProductMatches,
    out: W,
) -> Result<W, SinkFailure> {
    let mut copy = CopyRows::new(out);
    let days = date_days(day);
    for row in rows.iter() {
        copy.row(5)?;
        copy.date(days);
        copy.text(row.advertiser_id);
        copy.text(row.product_id);
        copy.int8(bigint(
            row.view_count,
            "view_count",
            &format!("({}, {})", row.advertiser_id, row.product_id),
        )?);
        copy.bool(row.matched);
    }
    copy.finish()
}

/// Writes `advertiser_match_rates` rows of `day` to `out` in COPY binary format.
fn encode_advertiser_rates<W: Write>(
    day: Day,
    rates: &[AdvertiserRate],
    out: W,
) -> Result<W, SinkFailure> {
    let mut copy = CopyRows::new(out);
    let days = date_days(day);
    for rate in rates {
        let key = &rate.advertiser_id;
        copy.row(7)?;
        copy.date(days);
        copy.text(key);
        copy.int8(bigint(rate.total_views, "total_views", key)?);
        copy.int8(bigint(rate.matched_views, "matched_views", key)?);
        copy.int8(bigint(rate.total_products, "total_products", key)?);
        copy.int8(bigint(rate.matched_products, "matched_products", key)?);
        copy.float8(rate.match_rate);
    }
    copy.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::ProductMatchRow;

    #[test]
    fn redacts_passwords_in_user_info_and_parameters() {
        assert_eq!(
            redact_url("postgres://ads:hunter2@db.internal:5432/ads?password=x&sslmode=disable"),
            "postgres://ads@db.internal:5432/ads?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://a:p@ss@h/db?PASSWORD=x"),
            "postgresql://a@h/db"
        );
        assert_eq!(redact_url("postgres://ads@h/db"), "postgres://ads@h/db");
        assert_eq!(redact_url("postgres://h"), "postgres://h");
    }

    #[test]
    fn secret_is_a_plain_password_or_the_rds_json_form() {
        assert_eq!(password_from_secret("s3cr:t{").unwrap(), "s3cr:t{");
        assert_eq!(
            password_from_secret(r#"{"username":"ads","password":"p\"w","engine":"postgres"}"#)
                .unwrap(),
            "p\"w"
        );
        assert!(password_from_secret(r#"{"username":"ads"}"#)
            .unwrap_err()
            .contains("\"password\""));
        assert!(password_from_secret("{not json").is_err());
        assert!(password_from_secret("").is_err());
    }

    #[test]
    fn region_comes_from_a_secrets_manager_arn_only() {
        assert_eq!(
            region_of_arn("arn:aws:secretsmanager:eu-west-1:123456789012:secret:ads-db-AbCdEf"),
            Some("eu-west-1")
        );
        assert_eq!(region_of_arn("ads-db"), None);
        assert_eq!(region_of_arn("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn day_names_are_digits_only() {
        let names = check_day("sink", NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()).unwrap();
        assert_eq!(names.literal, "'2026-11-20'");
        assert_eq!(names.partition, "product_matches_20261120");
        assert!(check_day("sink", NaiveDate::from_ymd_opt(10000, 1, 1).unwrap()).is_err());
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn encodes_the_copy_binary_format() {
        let day = NaiveDate::from_ymd_opt(2000, 1, 3).unwrap();
        let rows = ProductMatches::from_rows([ProductMatchRow {
            advertiser_id: "a",
            product_id: "pq",
            view_count: 258,
            matched: true,
        }]);
        let bytes = encode_product_matches(day, &rows, Vec::new()).unwrap();
        let mut want = COPY_HEADER.to_vec();
        want.extend_from_slice(&[0, 5]);
        want.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 2]);
        want.extend_from_slice(&[0, 0, 0, 1, b'a']);
        want.extend_from_slice(&[0, 0, 0, 2, b'p', b'q']);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend_from_slice(&[0, 0, 0, 1, 1]);
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(bytes, want);
        assert_eq!(
            date_days(NaiveDate::from_ymd_opt(1999, 12, 31).unwrap()),
            -1
        );
    }

    /// Records the size of every write, to see the stream is chunked.
    struct Writes(Vec<usize>, Vec<u8>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.len());
            self.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn large_days_stream_in_chunks_with_one_header_and_trailer() {
        let ids: Vec<String> = (0..100_000).map(|p| format!("prod-{p:09}")).collect();
        let rows = ProductMatches::from_rows(ids.iter().map(|p| ProductMatchRow {
            advertiser_id: "adv-00001",
            product_id: p,
            view_count: 1,
            matched: false,
        }));
        let Writes(sizes, bytes) =
            encode_product_matches(POSTGRES_EPOCH, &rows, Writes(Vec::new(), Vec::new())).unwrap();
        let row_bytes = 2 + 8 + (4 + 9) + (4 + 14) + 12 + 5;
        assert_eq!(bytes.len(), COPY_HEADER.len() + 100_000 * row_bytes + 2);
        assert!(bytes.starts_with(COPY_HEADER) && bytes.ends_with(&[0xff, 0xff]));
        assert!(sizes.len() > 3, "{sizes:?}");
        assert!(
            sizes.iter().all(|&size| size < COPY_CHUNK + 4096),
            "{sizes:?}"
        );
    }

    #[test]
    fn counts_beyond_bigint_are_refused_with_the_key() {
        let rows = ProductMatches::from_rows([ProductMatchRow {
            advertiser_id: "adv-1",
            product_id: "prod-2",
            view_count: u64::MAX,
            matched: false,
        }]);
        let error = encode_product_matches(POSTGRES_EPOCH, &rows, Vec::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("(adv-1, prod-2)"), "{error}");
    }
}
