//! Input and output locations: a local file, a directory (the files directly inside it), a glob
//! (`*`, `?` in the last path segment), or the same three under `s3://bucket/…`.
//!
//! S3 goes through `object_store`'s AmazonS3 client configured from the standard environment
//! (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_REGION or
//! AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 or else AWS_ENDPOINT_URL) with path-style requests,
//! and HTTP allowed only when the endpoint itself is `http://` (an emulator on loopback).
//! Callers get a synchronous API; one internal tokio runtime drives the requests.
//!
//! Listing is deterministic (sorted by name) and skips names starting with `_` or `.` — the
//! Hadoop/Spark convention for markers (`_SUCCESS`) and work in progress (`_tmp-…`), which is
//! what keeps a reader from picking up a half-written Parquet day.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::model::JobError;

/// One object or file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl Location {
    /// Parses a single object/file URI (no listing): `s3://bucket/key`, `file:///path` or a path.
    pub fn parse(uri: &str) -> Result<Location, JobError> {
        if let Some(rest) = uri
            .strip_prefix("s3://")
            .or_else(|| uri.strip_prefix("s3a://"))
        {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(JobError::Usage(format!(
                    "{uri}: an S3 location needs a bucket: s3://bucket/prefix"
                )));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        if uri.contains("://") && !uri.starts_with("file://") {
            return Err(JobError::Usage(format!(
                "{uri}: unsupported location scheme; use a local path, file://PATH or s3://bucket/prefix"
            )));
        }
        let path = uri.strip_prefix("file://").unwrap_or(uri);
        if path.is_empty() {
            return Err(JobError::Usage("an empty path is not a location".into()));
        }
        Ok(Location::Local(PathBuf::from(path)))
    }

    /// The last path segment (the file name).
    pub fn file_name(&self) -> &str {
        match self {
            Location::Local(path) => path.file_name().and_then(|n| n.to_str()).unwrap_or(""),
            Location::S3 { key, .. } => key.rsplit('/').next().unwrap_or(""),
        }
    }

    /// A child of this location taken as a directory/prefix.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(path) => Location::Local(path.join(name)),
            Location::S3 { bucket, key } => {
                let key = if key.is_empty() || key.ends_with('/') {
                    format!("{key}{name}")
                } else {
                    format!("{key}/{name}")
                };
                Location::S3 {
                    bucket: bucket.clone(),
                    key,
                }
            }
        }
    }

    /// Reads the whole object.
    pub fn read(&self) -> Result<Bytes, JobError> {
        match self {
            Location::Local(path) => std::fs::read(path)
                .map(Bytes::from)
                .map_err(|e| JobError::input(path.display(), format!("cannot read: {e}"))),
            Location::S3 { bucket, key } => {
                let store = s3_store(bucket)?;
                let path = ObjectPath::from(key.as_str());
                block_on(async { store.get(&path).await?.bytes().await })
                    .map_err(|e| JobError::input(self, format!("cannot read: {}", s3_error(&e))))
            }
        }
    }

    /// Writes the whole object (creating parent directories locally).
    pub fn write(&self, data: Bytes) -> Result<(), JobError> {
        match self {
            Location::Local(path) => {
                create_parent_dir(path)?;
                std::fs::write(path, &data)
                    .map_err(|e| JobError::Other(format!("cannot write {}: {e}", path.display())))
            }
            Location::S3 { bucket, key } => {
                let store = s3_store(bucket)?;
                let path = ObjectPath::from(key.as_str());
                block_on(async { store.put(&path, PutPayload::from(data)).await })
                    .map(|_| ())
                    .map_err(|e| JobError::Other(format!("cannot write {self}: {}", s3_error(&e))))
            }
        }
    }

    /// Writes the object as `fill` makes it, in chunks: straight into the file locally
    /// (creating parent directories; nothing holds the whole object in memory), into memory
    /// and then one PUT on S3.
    pub fn write_with<T>(
        &self,
        fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<T>,
    ) -> Result<T, JobError> {
        let failed = |e: std::io::Error| JobError::Other(format!("cannot write {self}: {e}"));
        match self {
            Location::Local(path) => {
                create_parent_dir(path)?;
                let mut file = std::fs::File::create(path).map_err(failed)?;
                fill(&mut file).map_err(failed)
            }
            Location::S3 { .. } => {
                let mut data = Vec::new();
                let result = fill(&mut data).map_err(failed)?;
                self.write(Bytes::from(data))?;
                Ok(result)
            }
        }
    }

    /// Copies an object to another key of the same bucket (S3) or renames a file (local).
    pub fn copy_to(&self, to: &Location) -> Result<(), JobError> {
        match (self, to) {
            (
                Location::S3 { bucket, key },
                Location::S3 {
                    bucket: b2,
                    key: k2,
                },
            ) if bucket == b2 => {
                let store = s3_store(bucket)?;
                let (from, to_path) = (
                    ObjectPath::from(key.as_str()),
                    ObjectPath::from(k2.as_str()),
                );
                block_on(async { store.copy(&from, &to_path).await }).map_err(|e| {
                    JobError::Other(format!("cannot copy {self} to {to}: {}", s3_error(&e)))
                })
            }
            (Location::Local(a), Location::Local(b)) => {
                std::fs::copy(a, b).map(|_| ()).map_err(|e| {
                    JobError::Other(format!(
                        "cannot copy {} to {}: {e}",
                        a.display(),
                        b.display()
                    ))
                })
            }
            _ => Err(JobError::Other(format!(
                "cannot copy {self} to {to}: different stores"
            ))),
        }
    }

    /// Deletes the object; a missing object is not an error.
    pub fn delete(&self) -> Result<(), JobError> {
        match self {
            Location::Local(path) => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(JobError::Other(
                    format!("cannot delete {}: {e}", path.display()),
                )),
                _ => Ok(()),
            },
            Location::S3 { bucket, key } => {
                let store = s3_store(bucket)?;
                let path = ObjectPath::from(key.as_str());
                match block_on(async { store.delete(&path).await }) {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(JobError::Other(format!(
                        "cannot delete {self}: {}",
                        s3_error(&e)
                    ))),
                }
            }
        }
    }

    /// Removes this location taken as a directory/prefix with everything under it, as far as
    /// it can: for cleaning up a staging area, where a leftover is harmless.
    pub fn remove_tree(&self) {
        match self {
            Location::Local(path) => {
                let _ = std::fs::remove_dir_all(path);
            }
            Location::S3 { .. } => {
                if let Ok(files) = self.list_all() {
                    for file in files {
                        let _ = file.delete();
                    }
                }
            }
        }
    }

    /// The files directly inside this location taken as a directory/prefix (sorted; names
    /// starting with `_` or `.` skipped). A missing directory/prefix lists as empty.
    pub fn list_dir(&self) -> Result<Vec<Location>, JobError> {
        match self {
            Location::Local(dir) => {
                let entries = match std::fs::read_dir(dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => {
                        return Err(JobError::input(dir.display(), format!("cannot list: {e}")))
                    }
                };
                let mut files = Vec::new();
                for entry in entries {
                    let entry = entry
                        .map_err(|e| JobError::input(dir.display(), format!("cannot list: {e}")))?;
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if is_hidden(name) {
                        continue;
                    }
                    let path = entry.path();
                    if path.is_file() {
                        files.push(Location::Local(path));
                    }
                }
                files.sort();
                Ok(files)
            }
            Location::S3 { bucket, key } => {
                let listing = s3_list(bucket, key)?
                    .map_err(|e| JobError::input(self, format!("cannot list: {e}")))?;
                let mut files: Vec<Location> = listing
                    .objects
                    .into_iter()
                    .filter(|meta| !is_hidden(meta.location.filename().unwrap_or("")))
                    .map(|meta| Location::S3 {
                        bucket: bucket.clone(),
                        key: meta.location.to_string(),
                    })
                    .collect();
                files.sort();
                Ok(files)
            }
        }
    }

    /// The directories/common prefixes directly inside this location (names only, sorted,
    /// hidden ones included: the Parquet sink needs to find its own `_tmp-…` leftovers).
    pub fn list_subdirs(&self) -> Result<Vec<String>, JobError> {
        match self {
            Location::Local(dir) => {
                let entries = match std::fs::read_dir(dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => {
                        return Err(JobError::Other(format!(
                            "cannot list {}: {e}",
                            dir.display()
                        )))
                    }
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect();
                names.sort();
                Ok(names)
            }
            Location::S3 { bucket, key } => {
                let listing = s3_list(bucket, key)?
                    .map_err(|e| JobError::Other(format!("cannot list {self}: {e}")))?;
                let mut names: Vec<String> = listing
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string))
                    .collect();
                names.sort();
                Ok(names)
            }
        }
    }

    /// Every object under this prefix (S3) or file inside this directory tree (local),
    /// hidden names included — for deleting a whole staging prefix.
    pub fn list_all(&self) -> Result<Vec<Location>, JobError> {
        match self {
            Location::Local(dir) => {
                let mut out = Vec::new();
                let mut stack = vec![dir.clone()];
                while let Some(dir) = stack.pop() {
                    let Ok(entries) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    for entry in entries.filter_map(|e| e.ok()) {
                        let path = entry.path();
                        if path.is_dir() {
                            stack.push(path);
                        } else {
                            out.push(Location::Local(path));
                        }
                    }
                }
                out.sort();
                Ok(out)
            }
            Location::S3 { .. } => {
                let mut out = self.list_dir_all_names()?;
                for sub in self.list_subdirs()? {
                    out.extend(self.join(&sub).list_all()?);
                }
                out.sort();
                Ok(out)
            }
        }
    }

    fn list_dir_all_names(&self) -> Result<Vec<Location>, JobError> {
        let Location::S3 { bucket, key } = self else {
            return Ok(Vec::new());
        };
        let listing = s3_list(bucket, key)?
            .map_err(|e| JobError::Other(format!("cannot list {self}: {e}")))?;
        Ok(listing
            .objects
            .into_iter()
            .map(|meta| Location::S3 {
                bucket: bucket.clone(),
                key: meta.location.to_string(),
            })
            .collect())
    }
}

/// `_…` and `.…` names are markers or work in progress, never data.
/// The step of [`replace_dir`] that failed.
pub enum ReplaceStep {
    MoveOldAside,
    MoveNewIn,
    RemoveOld,
}

/// Puts the local directory `new` in place of `target`: an existing `target` is renamed to
/// `old` first (and back when the move in fails) and removed last, so a reader sees the old
/// tree or the new one.
/// Creates the directories a local file goes in.
fn create_parent_dir(path: &std::path::Path) -> Result<(), JobError> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent)
            .map_err(|e| JobError::Other(format!("cannot create {}: {e}", parent.display()))),
        None => Ok(()),
    }
}

pub fn replace_dir(
    new: &Path,
    target: &Path,
    old: &Path,
) -> Result<(), (ReplaceStep, std::io::Error)> {
    let had_old = target.exists();
    if had_old {
        std::fs::rename(target, old).map_err(|e| (ReplaceStep::MoveOldAside, e))?;
    }
    if let Err(e) = std::fs::rename(new, target) {
        if had_old {
            let _ = std::fs::rename(old, target);
        }
        return Err((ReplaceStep::MoveNewIn, e));
    }
    if had_old {
        std::fs::remove_dir_all(old).map_err(|e| (ReplaceStep::RemoveOld, e))?;
    }
    Ok(())
}

/// A name part unique to one run of a writer (process id and clock), for its staging area.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}", std::process::id())
}

pub fn is_hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}

/// Expands an input URI into the files it names, sorted: a file is itself; a directory or an
/// `s3://` prefix ending in `/` (or naming no single object) is the files directly inside it;
/// a last segment with `*` or `?` is a glob over its parent. An empty result is an error that
/// says what was looked at.
pub fn list_inputs(uri: &str) -> Result<Vec<Location>, JobError> {
    let location = Location::parse(uri)?;
    let files = match &location {
        Location::Local(path) => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if is_glob(name) {
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
                let parent = Location::Local(parent.unwrap_or(Path::new(".")).to_path_buf());
                glob_filter(parent.list_dir()?, name)
            } else if path.is_dir() {
                location.list_dir()?
            } else if path.is_file() {
                vec![location.clone()]
            } else {
                return Err(JobError::input(
                    uri,
                    "no such file or directory; give a file, a directory, a glob (part-*.parquet) or s3://bucket/prefix/",
                ));
            }
        }
        Location::S3 { bucket, key } => {
            let name = key.rsplit('/').next().unwrap_or("");
            if is_glob(name) {
                let parent_key = &key[..key.len() - name.len()];
                let parent = Location::S3 {
                    bucket: bucket.clone(),
                    key: parent_key.to_string(),
                };
                glob_filter(parent.list_dir()?, name)
            } else if key.is_empty() || key.ends_with('/') {
                location.list_dir()?
            } else {
                // A key names one object if it exists; otherwise treat it as a prefix.
                let store = s3_store(bucket)?;
                let path = ObjectPath::from(key.as_str());
                match block_on(async { store.head(&path).await }) {
                    Ok(_) => vec![location.clone()],
                    Err(object_store::Error::NotFound { .. }) => location.list_dir()?,
                    Err(e) => {
                        return Err(JobError::input(
                            uri,
                            format!("cannot read: {}", s3_error(&e)),
                        ))
                    }
                }
            }
        }
    };
    if files.is_empty() {
        return Err(JobError::input(
            uri,
            "no input files found (names starting with `_` or `.` are skipped)",
        ));
    }
    Ok(files)
}

fn is_glob(name: &str) -> bool {
    name.contains('*') || name.contains('?')
}

fn glob_filter(files: Vec<Location>, pattern: &str) -> Vec<Location> {
    files
        .into_iter()
        .filter(|f| glob_match(pattern.as_bytes(), f.file_name().as_bytes()))
        .collect()
}

/// `*` matches any run of characters, `?` one character; everything else literally.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut star_n) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            star_n = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            star_n += 1;
            n = star_n;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("emrship-io")
            .enable_all()
            .build()
            .expect("a tokio runtime for S3 requests")
    })
}

/// Runs a future to completion on the internal runtime (callers are synchronous threads).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// The environment's S3 endpoint override, if any: AWS_ENDPOINT_URL_S3 wins over
/// AWS_ENDPOINT_URL (the AWS SDKs' own precedence).
pub fn s3_endpoint_from_env() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
}

pub(crate) fn s3_store(bucket: &str) -> Result<Arc<AmazonS3>, JobError> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<AmazonS3>>>> = OnceLock::new();
    let stores = STORES.get_or_init(Default::default);
    let mut stores = stores.lock().expect("S3 store cache");
    if let Some(store) = stores.get(bucket) {
        return Ok(store.clone());
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(false);
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".to_string());
    builder = builder.with_region(region);
    if let Some(endpoint) = s3_endpoint_from_env() {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    let store = Arc::new(builder.build().map_err(|e| {
        JobError::Usage(format!(
            "s3://{bucket}: cannot configure the S3 client: {e}; set AWS_REGION and credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an instance profile)"
        ))
    })?);
    stores.insert(bucket.to_string(), store.clone());
    Ok(store)
}

/// One level of `s3://bucket/key/`: its objects and common prefixes. The outer error is the
/// client that could not be built; the inner one the listing, explained, for the caller to
/// place in its own error.
fn s3_list(bucket: &str, key: &str) -> Result<Result<object_store::ListResult, String>, JobError> {
    let store = s3_store(bucket)?;
    let prefix = key.trim_end_matches('/');
    let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
    Ok(
        block_on(async { store.list_with_delimiter(prefix.as_ref()).await })
            .map_err(|e| s3_error(&e)),
    )
}

pub(crate) fn s3_error(error: &object_store::Error) -> String {
    match error {
        object_store::Error::NotFound { .. } => "no such object".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_star_and_question_mark() {
        assert!(glob_match(b"part-*.parquet", b"part-00001.parquet"));
        assert!(glob_match(b"*", b"x"));
        assert!(glob_match(b"p?rt*", b"part-1"));
        assert!(!glob_match(b"part-*.parquet", b"part-1.csv"));
        assert!(!glob_match(b"a?", b"a"));
        assert!(glob_match(b"*.csv", b".csv"));
    }

    #[test]
    fn parses_s3_and_local_uris() {
        assert_eq!(
            Location::parse("s3://b/k/x.parquet").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                key: "k/x.parquet".into()
            }
        );
        assert_eq!(
            Location::parse("file:///tmp/x").unwrap(),
            Location::Local("/tmp/x".into())
        );
        assert!(Location::parse("gs://b/k").is_err());
        assert!(Location::parse("s3:///k").is_err());
    }

    #[test]
    fn lists_a_directory_sorted_without_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.csv", "a.csv", "_SUCCESS", ".crc"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let files = list_inputs(dir.path().to_str().unwrap()).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file_name().to_string()).collect();
        assert_eq!(names, ["a.csv", "b.csv"]);
        let glob = format!("{}/b*", dir.path().display());
        assert_eq!(list_inputs(&glob).unwrap().len(), 1);
        let err = list_inputs(&format!("{}/nothing-*", dir.path().display())).unwrap_err();
        assert!(err.to_string().contains("no input files"), "{err}");
    }
}
