//! DynamoDB catalog (placeholder: built in its own change).

use crate::job::model::{Catalog, JobError, PairRef};

pub struct DynamoDbCatalog;

impl DynamoDbCatalog {
    pub fn connect(table: &str) -> Result<Self, JobError> {
        Err(JobError::catalog(
            format!("dynamodb://{table}"),
            "the DynamoDB catalog is not built yet",
        ))
    }
}

impl Catalog for DynamoDbCatalog {
    fn contains_all(&self, _keys: &[PairRef<'_>]) -> Result<Vec<bool>, JobError> {
        Err(JobError::Other(
            "the DynamoDB catalog is not built yet".into(),
        ))
    }
}
