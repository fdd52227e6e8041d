//! The stream job's output prefix: create-only writes, reads and listings, on S3 (the cluster)
//! or a local directory (tests of the pure parts, a laptop). On S3 a create is a PutObject with
//! `If-None-Match: *`: S3 answers 412 when the key exists, and nothing is overwritten. Locally a
//! file is written aside and hard-linked into place, which fails when the name exists.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::job::location::{s3_error, s3_store, Location};
use crate::job::model::JobError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call wrote the object.
    New,
    /// The key existed already; nothing was written.
    Exists,
}

#[derive(Clone)]
pub enum OutputStore {
    S3 {
        store: Arc<AmazonS3>,
        bucket: String,
        /// Ends with `/`.
        prefix: String,
    },
    Local {
        dir: PathBuf,
    },
}

impl OutputStore {
    pub fn open(uri: &str) -> Result<OutputStore, JobError> {
        match Location::parse(uri)? {
            Location::S3 { bucket, key } => {
                if key.is_empty() {
                    return Err(JobError::Usage(format!(
                        "--output {uri}: give a prefix under the bucket (s3://{bucket}/windows/), not the bucket's root"
                    )));
                }
                let prefix = format!("{}/", key.trim_end_matches('/'));
                Ok(OutputStore::S3 {
                    store: s3_store(&bucket)?,
                    bucket,
                    prefix,
                })
            }
            Location::Local(dir) => Ok(OutputStore::Local { dir }),
        }
    }

    pub fn describe(&self, key: &str) -> String {
        match self {
            OutputStore::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}{key}"),
            OutputStore::Local { dir } => dir.join(key).display().to_string(),
        }
    }

    fn object(&self, key: &str) -> ObjectPath {
        match self {
            OutputStore::S3 { prefix, .. } => ObjectPath::from(format!("{prefix}{key}")),
            OutputStore::Local { .. } => unreachable!("local paths are not object paths"),
        }
    }

    /// Writes `key` only if nothing is there yet.
    pub async fn create(&self, key: &str, data: Vec<u8>) -> Result<Created, JobError> {
        match self {
            OutputStore::S3 { store, .. } => {
                let options = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                match store
                    .put_opts(&self.object(key), PutPayload::from(data), options)
                    .await
                {
                    Ok(_) => Ok(Created::New),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::Exists),
                    Err(e) => Err(JobError::Other(format!(
                        "cannot write {}: {}",
                        self.describe(key),
                        s3_error(&e)
                    ))),
                }
            }
            OutputStore::Local { dir } => {
                let path = dir.join(key);
                let fail = |e: std::io::Error| {
                    JobError::Other(format!("cannot write {}: {e}", path.display()))
                };
                let parent = path.parent().expect("a key has a parent directory");
                std::fs::create_dir_all(parent).map_err(fail)?;
                let aside = parent.join(format!(
                    ".tmp-{}-{}",
                    std::process::id(),
                    crate::job::location::run_id()
                ));
                std::fs::write(&aside, &data).map_err(fail)?;
                let linked = std::fs::hard_link(&aside, &path);
                let _ = std::fs::remove_file(&aside);
                match linked {
                    Ok(()) => Ok(Created::New),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Created::Exists),
                    Err(e) => Err(fail(e)),
                }
            }
        }
    }

    /// The object's bytes, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, JobError> {
        match self {
            OutputStore::S3 { store, .. } => {
                let read = async { store.get(&self.object(key)).await?.bytes().await };
                match read.await {
                    Ok(bytes) => Ok(Some(bytes.to_vec())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(JobError::Other(format!(
                        "cannot read {}: {}",
                        self.describe(key),
                        s3_error(&e)
                    ))),
                }
            }
            OutputStore::Local { dir } => match std::fs::read(dir.join(key)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(JobError::Other(format!(
                    "cannot read {}: {e}",
                    self.describe(key)
                ))),
            },
        }
    }

    /// One level under `prefix` (ending with `/`): the names of its objects and of its
    /// sub-prefixes, each without the `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<String>, Vec<String>), JobError> {
        match self {
            OutputStore::S3 {
                store,
                prefix: root,
                ..
            } => {
                let full = format!("{root}{prefix}");
                let path = ObjectPath::from(full.trim_end_matches('/'));
                let listing = store.list_with_delimiter(Some(&path)).await.map_err(|e| {
                    JobError::Other(format!(
                        "cannot list {}: {}",
                        self.describe(prefix),
                        s3_error(&e)
                    ))
                })?;
                let name = |p: &ObjectPath| p.filename().unwrap_or_default().to_string();
                let mut objects: Vec<String> =
                    listing.objects.iter().map(|m| name(&m.location)).collect();
                let mut dirs: Vec<String> = listing.common_prefixes.iter().map(name).collect();
                objects.sort();
                dirs.sort();
                Ok((objects, dirs))
            }
            OutputStore::Local { dir } => {
                let (mut objects, mut dirs) = (Vec::new(), Vec::new());
                let entries = match std::fs::read_dir(dir.join(prefix)) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok((objects, dirs))
                    }
                    Err(e) => {
                        return Err(JobError::Other(format!(
                            "cannot list {}: {e}",
                            self.describe(prefix)
                        )))
                    }
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.starts_with(".tmp-") {
                        continue;
                    }
                    if entry.path().is_dir() {
                        dirs.push(name);
                    } else {
                        objects.push(name);
                    }
                }
                objects.sort();
                dirs.sort();
                Ok((objects, dirs))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_create_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("emrship-store-{}", std::process::id()));
        let store = OutputStore::open(dir.to_str().unwrap()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert_eq!(
                store.create("a/b.json", b"one".to_vec()).await.unwrap(),
                Created::New
            );
            assert_eq!(
                store.create("a/b.json", b"two".to_vec()).await.unwrap(),
                Created::Exists
            );
            assert_eq!(store.get("a/b.json").await.unwrap().unwrap(), b"one");
            assert_eq!(store.get("a/c.json").await.unwrap(), None);
            store.create("a/d/e", Vec::new()).await.unwrap();
            let (objects, dirs) = store.list("a/").await.unwrap();
            assert_eq!(objects, vec!["b.json"]);
            assert_eq!(dirs, vec!["d"]);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
