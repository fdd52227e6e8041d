//! emrship-job: the compute shipped to cluster nodes (the `emrship-job` binary), also run
//! in-process by `emrship run --local`.
//!
//! Data flow: views (Parquet/CSV/JSONL, local or s3://) → count per (advertiser, product) →
//! catalog lookup of the distinct pairs (files or DynamoDB) → `product_matches` → per-advertiser
//! reduce → `advertiser_match_rates` → a sink (PostgreSQL, SQLite, Parquet directory or s3://).
//!
//! - [`location`]: files, directories, globs and `s3://` prefixes;
//! - [`source`]: reading Parquet/CSV/JSONL rows; [`counts`]: the aggregation kernel;
//! - [`catalog`], [`sink`]: where the catalog comes from and the tables go;
//! - [`engine`]: the local engine (and the Spark engine's shared pieces);
//! - [`rollup`]: the hourly page-view rollup (its own map/shuffle/reduce);
//! - [`stream`]: the same documents per tumbling window from a Kinesis stream, exactly once;
//! - [`gen`]: synthetic data; [`summary`]: what a run prints; [`cli`]: the binary.

pub mod catalog;
pub mod cli;
pub mod counts;
pub mod engine;
pub mod gen;
pub mod json_line;
pub mod location;
pub mod model;
pub mod rollup;
pub mod sink;
pub mod source;
pub mod stream;
pub mod summary;
pub mod table;
pub mod text;
mod varint;
