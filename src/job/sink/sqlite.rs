//! SQLite sink (placeholder: built in its own change).

use std::path::Path;

use crate::job::model::{DaySink, JobError, MatchRateTables, SinkReport};

pub struct SqliteSink;

impl SqliteSink {
    pub fn open(path: &Path) -> Result<Self, JobError> {
        Err(JobError::sink(
            path.display(),
            "the SQLite sink is not built yet",
        ))
    }
}

impl DaySink for SqliteSink {
    fn write_day(&mut self, _tables: &MatchRateTables) -> Result<SinkReport, JobError> {
        Err(JobError::Other("the SQLite sink is not built yet".into()))
    }
}
