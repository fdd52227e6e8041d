//! PostgreSQL sink (placeholder: built in its own change).

use crate::job::model::{DaySink, JobError, MatchRateTables, SinkReport};

pub struct PostgresSink;

impl PostgresSink {
    pub fn connect(url: &str) -> Result<Self, JobError> {
        Err(JobError::sink(url, "the PostgreSQL sink is not built yet"))
    }
}

impl DaySink for PostgresSink {
    fn write_day(&mut self, _tables: &MatchRateTables) -> Result<SinkReport, JobError> {
        Err(JobError::Other(
            "the PostgreSQL sink is not built yet".into(),
        ))
    }
}
