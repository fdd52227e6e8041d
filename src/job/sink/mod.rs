//! Where a day's tables go, chosen by the sink URL:
//! `postgres://…` / `postgresql://…` (binary COPY, one transaction per day), `sqlite://PATH`
//! (the embedded default for local runs), and anything else — a local directory (`file://`
//! accepted) or an `s3://` prefix — as Parquet datasets (`product_matches/day=D/…`,
//! `advertiser_match_rates/day=D/…`).

use super::model::{DaySink, JobError};

pub mod parquet;
pub mod postgres;
pub mod sqlite;

/// Opens the sink `url` names. Opening checks what can be checked before any work is done
/// (the database answers, the directory is writable) so a run fails before it computes.
pub fn open(url: &str) -> Result<Box<dyn DaySink>, JobError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(postgres::PostgresSink::connect(url)?));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Box::new(sqlite::SqliteSink::open(std::path::Path::new(
            path,
        ))?));
    }
    Ok(Box::new(parquet::ParquetSink::open(url)?))
}
