//! Reading back a dataset `emrship-job gen rollup` wrote: its files and its Parquet events.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Every file under `root`, relative, sorted.
pub fn files(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// One event as read back from a Parquet file of the dataset.
pub struct ParquetEvent {
    /// The file it is in, relative to the dataset root.
    pub file: PathBuf,
    pub url: String,
    pub referrer: Option<String>,
    pub session: String,
    /// UTC microseconds.
    pub ts: i64,
}

/// Every event of every `.parquet` file under `root`, file by file in path order, by column
/// name (url, referrer, session_id, ts).
pub fn read_parquet_events(root: &Path) -> Vec<ParquetEvent> {
    let mut events = Vec::new();
    for relative in files(root) {
        if relative.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let file = File::open(root.join(&relative)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("{}: no column {name}", relative.display()))
                    .clone()
            };
            let (urls, referrers, sessions, times) = (
                column("url"),
                column("referrer"),
                column("session_id"),
                column("ts"),
            );
            let (urls, referrers, sessions) = (
                urls.as_string::<i32>(),
                referrers.as_string::<i32>(),
                sessions.as_string::<i32>(),
            );
            let times = times.as_primitive::<TimestampMicrosecondType>();
            for i in 0..batch.num_rows() {
                events.push(ParquetEvent {
                    file: relative.clone(),
                    url: urls.value(i).to_string(),
                    referrer: referrers
                        .is_valid(i)
                        .then(|| referrers.value(i).to_string()),
                    session: sessions.value(i).to_string(),
                    ts: times.value(i),
                });
            }
        }
    }
    events
}
