//! The product catalog, chosen by its URI: `dynamodb://TABLE` (BatchGetItem of the distinct
//! viewed pairs only), or Parquet/CSV files (a path, directory, glob or `s3://` prefix).

use super::model::{Catalog, JobError};

pub mod dynamodb;
pub mod files;

/// Opens the catalog `uri` names: `dynamodb://TABLE`, else files (`file://` accepted).
pub fn open(uri: &str) -> Result<Box<dyn Catalog + Send + Sync>, JobError> {
    if let Some(table) = uri.strip_prefix("dynamodb://") {
        return Ok(Box::new(dynamodb::DynamoDbCatalog::connect(table)?));
    }
    Ok(Box::new(files::FileCatalog::open(uri)?))
}
