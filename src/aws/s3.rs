//! Content-addressed uploads to S3: HEAD first, upload only what is not there yet.
//!
//! Keys carry the sha256 of their bytes (`render::artifacts`), so an object at the key with the
//! same length and the same `sha256` metadata is the same artifact: one HEAD, zero bytes sent.
//! Small objects go up with one PutObject carrying an `x-amz-checksum-sha256` that S3 checks;
//! above [`MULTIPART_THRESHOLD`] a multipart upload sends parts in parallel, each with its own
//! SHA256 checksum, and any failure (or Ctrl-C) aborts the upload so no parts are left behind
//! to be billed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::change::{Action, Change};
use super::error::{sdk_error, AwsError};
use crate::render::artifacts::{base64, Digest256, Upload};
use crate::spec::s3::S3Uri;

/// Objects larger than this go up as a multipart upload.
pub const MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;
/// The smallest part size; larger objects get larger parts to stay under S3's 10,000 parts.
pub const MIN_PART_SIZE: u64 = 8 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;
/// Parts in flight at once: enough to fill a link, few enough for a small machine's memory.
pub const PARALLEL_PARTS: usize = 4;
/// The user metadata key holding the object's hex sha256 (`x-amz-meta-sha256`). A multipart
/// object's own checksum is a checksum of part checksums, so it cannot be compared with the
/// content address; this can, for both kinds of upload.
pub const SHA256_METADATA: &str = "sha256";

/// Called with the number of bytes each finished request sent.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// An S3 client from the run's one SDK config. Emulators and custom endpoints get path-style
/// addressing (`http://host/bucket/key`): they have no per-bucket host names.
pub fn client(config: &SdkConfig, path_style: bool) -> Client {
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build(),
    )
}

/// One clear sentence per failure: what failed, where, and how to fix it.
fn explain<E>(
    action: &str,
    permission: &str,
    uri: &S3Uri,
    error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let code = error.code().unwrap_or_default();
    let failed = format!("{action} {uri} failed");
    if code == "NoSuchBucket" {
        return format!(
            "{failed}: the bucket `{}` does not exist; create it (`aws s3 mb s3://{}`) or point `artifacts` in the spec at an existing bucket",
            uri.bucket, uri.bucket
        );
    }
    if matches!(
        code,
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken"
    ) {
        return format!(
            "{failed}: S3 rejected the credentials ({code}); refresh or fix them (`aws configure`, `aws sso login`, --profile)"
        );
    }
    if code == "AccessDenied" || status == Some(403) {
        return format!(
            "{failed}: access denied; the caller needs {permission} on arn:aws:s3:::{}/{} (check who you are with `aws sts get-caller-identity`, and the bucket policy)",
            uri.bucket, uri.key
        );
    }
    if code == "PermanentRedirect" || status == Some(301) {
        return format!(
            "{failed}: the bucket `{}` is in another region than the spec's; set `region` (or --region) to the bucket's region",
            uri.bucket
        );
    }
    format!("{failed}: {}", DisplayErrorContext(error))
}

/// Checks the bucket exists before anything is uploaded, so a missing bucket stops a deploy
/// with nothing half-done. A 403 is not decided here: HeadBucket needs s3:ListBucket, which a
/// deploy role may lack; the uploads themselves then say what is missing.
pub async fn check_bucket(client: &Client, uri: &S3Uri) -> Result<(), String> {
    match client.head_bucket().bucket(&uri.bucket).send().await {
        Ok(_) => Ok(()),
        Err(error) => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            match status {
                Some(404) => Err(format!(
                    "the bucket `{}` (for {uri}) does not exist; create it (`aws s3 mb s3://{}`) or point `artifacts` in the spec at an existing bucket",
                    uri.bucket, uri.bucket
                )),
                Some(403) => Ok(()),
                _ => Err(explain("checking the bucket of", "s3:ListBucket", uri, &error)),
            }
        }
    }
}

/// Whether `uri` already holds exactly these bytes (same length, same sha256 metadata or
/// same whole-object SHA256 checksum).
pub async fn holds(client: &Client, uri: &S3Uri, digest: &Digest256) -> Result<bool, String> {
    let head = client
        .head_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await;
    match head {
        Ok(object) => {
            let same_length = object.content_length() == Some(digest.bytes as i64);
            let same_metadata = object
                .metadata()
                .and_then(|m| m.get(SHA256_METADATA))
                .is_some_and(|sha| sha.eq_ignore_ascii_case(&digest.sha256));
            let same_checksum = object.checksum_sha256()
                == Some(base64(&hex::decode(&digest.sha256).unwrap_or_default()).as_str());
            Ok(same_length && (same_metadata || same_checksum))
        }
        Err(error) if error.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(false),
        Err(error) => Err(explain("looking up (HEAD)", "s3:GetObject", uri, &error)),
    }
}

/// Whether a failed HEAD means "no such object": only a 404 does (HEAD answers carry no body,
/// so the status is all there is). A 403, a throttle or a dropped connection says nothing about
/// the object, and treating it as absent would skip a delete that was needed.
pub fn head_says_absent(status: Option<u16>) -> bool {
    status == Some(404)
}

/// Deletes the object at `uri` if it is there; `Ok(false)` when it was already absent.
pub async fn delete_if_present(client: &Client, uri: &S3Uri) -> Result<bool, AwsError> {
    let head = client
        .head_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .send()
        .await;
    match head {
        Ok(_) => {}
        Err(error) if head_says_absent(error.raw_response().map(|r| r.status().as_u16())) => {
            return Ok(false)
        }
        Err(error) => return Err(AwsError::from_sdk("HeadObject", error)),
    }
    client
        .delete_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .send()
        .await
        .map_err(sdk_error("DeleteObject"))?;
    Ok(true)
}

/// Removes the object at `uri` (what a report calls `resource`): `deleted`, or `absent` when
/// it was not there. Only a 404 HEAD means absent ([`head_says_absent`]).
pub async fn remove_object(
    client: &Client,
    resource: &'static str,
    uri: &S3Uri,
) -> Result<Change, AwsError> {
    let found = delete_if_present(client, uri).await?;
    Ok(Change::new(
        resource,
        uri.to_string(),
        Action::removed(found),
    ))
}

/// Puts `bytes` at `uri` (what a report calls `resource`) unless it already holds exactly
/// them: `uploaded` or `unchanged`. The bucket is checked first, so a missing bucket is one
/// clear error.
pub async fn upsert_object(
    client: &Client,
    resource: &'static str,
    uri: &S3Uri,
    bytes: Vec<u8>,
) -> Result<Change, String> {
    check_bucket(client, uri).await?;
    let digest = Digest256::of(&bytes);
    let outcome = upload_once(client, uri, Arc::new(bytes), &digest, Arc::new(|_| {})).await?;
    let action = if outcome.uploaded {
        Action::Uploaded
    } else {
        Action::Unchanged
    };
    Ok(Change::new(resource, uri.to_string(), action))
}

/// Why each of a plan's uploads is not usable in S3, one sentence each (empty when all are
/// there with the plan's size): missing (a 404 HEAD), another size, or access denied.
/// Anything else (throttling, a dropped connection) is the error.
pub async fn missing_uploads(client: &Client, uploads: &[Upload]) -> Result<Vec<String>, AwsError> {
    let mut problems = Vec::new();
    for upload in uploads {
        let uri = &upload.s3_uri;
        match client
            .head_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .send()
            .await
        {
            Ok(head) => {
                if let (Some(want), Some(have)) = (upload.bytes, head.content_length()) {
                    if u64::try_from(have).ok() != Some(want) {
                        problems.push(format!(
                            "{uri} has {have} bytes, the plan expects {want} ({})",
                            upload.source
                        ));
                    }
                }
            }
            Err(error) => {
                let status = error.raw_response().map(|r| r.status().as_u16());
                if head_says_absent(status) {
                    // The object, or its whole bucket: HEAD answers both with a bare 404.
                    problems.push(format!("{uri} is missing ({})", upload.source));
                } else if status == Some(403) {
                    problems.push(format!(
                        "{uri}: access denied; these credentials need s3:GetObject on it (and \
                         s3:ListBucket on s3://{} to tell a missing object from a forbidden one)",
                        uri.bucket
                    ));
                } else {
                    return Err(AwsError::from_sdk("HeadObject", error));
                }
            }
        }
    }
    Ok(problems)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOutcome {
    /// False when the object was already there (zero bytes sent).
    pub uploaded: bool,
    /// 0 for a single PutObject.
    pub parts: usize,
}

/// Uploads `bytes` to its content-addressed `uri` unless it is already there.
pub async fn upload_once(
    client: &Client,
    uri: &S3Uri,
    bytes: Arc<Vec<u8>>,
    digest: &Digest256,
    progress: Progress,
) -> Result<UploadOutcome, String> {
    watch_interrupts();
    if holds(client, uri, digest).await? {
        return Ok(UploadOutcome {
            uploaded: false,
            parts: 0,
        });
    }
    if digest.bytes > MULTIPART_THRESHOLD {
        let parts = multipart(client, uri, bytes, digest, progress).await?;
        Ok(UploadOutcome {
            uploaded: true,
            parts,
        })
    } else {
        let put = client
            .put_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .metadata(SHA256_METADATA, &digest.sha256)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(base64(&Sha256::digest(bytes.as_slice())))
            .body(ByteStream::from(bytes.as_ref().clone()))
            .send();
        // A single PutObject leaves nothing behind when dropped half-way.
        tokio::select! {
            answer = put => answer.map_err(|e| explain("uploading", "s3:PutObject", uri, &e))?,
            () = interrupted() => return Err(format!("interrupted (Ctrl-C) while uploading {uri}")),
        };
        progress(digest.bytes);
        Ok(UploadOutcome {
            uploaded: true,
            parts: 0,
        })
    }
}

/// Ctrl-C, seen by every upload in flight. One listener for the process: installing tokio's
/// SIGINT handler replaces the default "terminate", so every upload must watch it, or a Ctrl-C
/// between multipart uploads would be swallowed.
struct Interrupt {
    fired: AtomicBool,
    notify: Notify,
}

fn interrupt() -> &'static Arc<Interrupt> {
    static INTERRUPT: OnceLock<Arc<Interrupt>> = OnceLock::new();
    INTERRUPT.get_or_init(|| {
        let interrupt = Arc::new(Interrupt {
            fired: AtomicBool::new(false),
            notify: Notify::new(),
        });
        // Registered here, synchronously: from now on SIGINT is ours, so no upload can be
        // started and then killed before it is watched.
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
            Ok(mut sigint) => {
                let listener = interrupt.clone();
                tokio::spawn(async move {
                    if sigint.recv().await.is_some() {
                        listener.fired.store(true, Ordering::SeqCst);
                        listener.notify.notify_waiters();
                    }
                });
            }
            // Without a handler, Ctrl-C keeps its default (terminate): uploads still complete
            // or abort on their own errors.
            Err(e) => eprintln!("warning: cannot watch for Ctrl-C ({e}); an interrupted multipart upload may be left open"),
        }
        interrupt
    })
}

/// Takes over Ctrl-C for the uploads to come, so an interrupted multipart upload is aborted
/// instead of left behind. Call inside the tokio runtime, before the first upload.
pub fn watch_interrupts() {
    interrupt();
}

/// Resolves once the user pressed Ctrl-C (must run inside the tokio runtime).
async fn interrupted() {
    let interrupt = interrupt();
    let notified = interrupt.notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if interrupt.fired.load(Ordering::SeqCst) {
        return;
    }
    notified.await;
}

/// The part size for an object of `len` bytes: at least [`MIN_PART_SIZE`], whole MiB, and no
/// more than 10,000 parts.
pub fn part_size(len: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = len.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    needed.max(MIN_PART_SIZE)
}

async fn multipart(
    client: &Client,
    uri: &S3Uri,
    bytes: Arc<Vec<u8>>,
    digest: &Digest256,
    progress: Progress,
) -> Result<usize, String> {
    let bytes_len = bytes.len() as u64;
    let created = client
        .create_multipart_upload()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .metadata(SHA256_METADATA, &digest.sha256)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .map_err(|e| explain("starting a multipart upload of", "s3:PutObject", uri, &e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| format!("S3 started a multipart upload of {uri} without an upload id"))?
        .to_string();

    let work = upload_parts_and_complete(client, uri, &upload_id, bytes, progress);
    let result = tokio::select! {
        result = work => result,
        () = interrupted() => Err(format!("interrupted (Ctrl-C) while uploading {uri}")),
    };
    // Another upload of this key completed the object (or our CompleteMultipartUpload acted
    // but its answer was lost, and the SDK's retry found the upload gone): the content-addressed
    // key holds our bytes, which is all a deploy needs.
    let interrupted_now = interrupt().fired.load(Ordering::SeqCst);
    let result = match result {
        Err(message) if !interrupted_now && holds(client, uri, digest).await.unwrap_or(false) => {
            eprintln!("note: {message}, but {uri} already holds these bytes");
            // Ours may still be open (another deploy completed the object first); if it was
            // the one completed, S3 answers NoSuchUpload, which is as good.
            let _ = abort_upload(client, uri, &upload_id).await;
            Ok(bytes_len.div_ceil(part_size(bytes_len)) as usize)
        }
        other => other,
    };
    if result.is_ok() {
        // A CreateMultipartUpload whose answer was lost (connection dropped after S3 acted) was
        // retried by the SDK: S3 holds an upload nobody knows the id of, billed until aborted.
        // With the object in place every other upload of this content-addressed key would only
        // write the same bytes again, so none is worth keeping.
        if let Err(stray) = abort_strays(client, uri, &upload_id).await {
            eprintln!("warning: {stray}");
        }
    }
    match result {
        Ok(parts) => Ok(parts),
        Err(message) => {
            // Parts of an unfinished upload are stored (and billed) until aborted.
            let aborted = abort_upload(client, uri, &upload_id).await;
            Err(match aborted {
                Ok(_) => format!("{message} (the multipart upload was aborted; nothing is left behind)"),
                Err(e) => format!(
                    "{message}; aborting multipart upload {upload_id} also failed: {}. Remove its parts with \
                     `aws s3api abort-multipart-upload --bucket {} --key {} --upload-id {upload_id}` (needs s3:AbortMultipartUpload)",
                    DisplayErrorContext(e),
                    uri.bucket,
                    uri.key
                ),
            })
        }
    }
}

/// Aborts multipart upload `upload_id` of `uri`'s key (its stored parts are billed until then).
async fn abort_upload(
    client: &Client,
    uri: &S3Uri,
    upload_id: &str,
) -> Result<(), SdkError<AbortMultipartUploadError, HttpResponse>> {
    client
        .abort_multipart_upload()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .upload_id(upload_id)
        .send()
        .await
        .map(|_| ())
}

/// Aborts every multipart upload of exactly `uri`'s key other than `ours`: called once the
/// object is in place, when they can only be the attempts whose answers were lost (or another
/// deploy of the same bytes, which then finds the object there).
async fn abort_strays(client: &Client, uri: &S3Uri, ours: &str) -> Result<(), String> {
    let listed = client
        .list_multipart_uploads()
        .bucket(&uri.bucket)
        .prefix(&uri.key)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot check for multipart uploads of {uri} left by lost answers: {}; list them with \
                 `aws s3api list-multipart-uploads --bucket {} --prefix {}` (needs s3:ListBucketMultipartUploads)",
                DisplayErrorContext(e),
                uri.bucket,
                uri.key
            )
        })?;
    for upload in listed.uploads() {
        let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
            continue;
        };
        if key != uri.key || id == ours {
            continue;
        }
        abort_upload(client, uri, id).await.map_err(|e| {
                format!(
                    "cannot abort multipart upload {id} of {uri} (left by a lost answer): {}; remove it with \
                     `aws s3api abort-multipart-upload --bucket {} --key {key} --upload-id {id}`",
                    DisplayErrorContext(e),
                    uri.bucket
                )
            })?;
    }
    Ok(())
}

async fn upload_parts_and_complete(
    client: &Client,
    uri: &S3Uri,
    upload_id: &str,
    bytes: Arc<Vec<u8>>,
    progress: Progress,
) -> Result<usize, String> {
    let len = bytes.len() as u64;
    let size = part_size(len);
    let count = len.div_ceil(size) as usize;
    let permits = Arc::new(Semaphore::new(PARALLEL_PARTS));
    let mut tasks = JoinSet::new();
    for index in 0..count {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| format!("part scheduler closed: {e}"))?;
        // Fail fast: a part that failed after its retries ends the upload.
        while let Some(done) = tasks.try_join_next() {
            if let Err(message) = done.map_err(|e| format!("part task failed: {e}"))? {
                tasks.abort_all();
                return Err(message);
            }
        }
        let client = client.clone();
        let uri = uri.clone();
        let upload_id = upload_id.to_string();
        let bytes = bytes.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let start = index * size as usize;
            let end = (start + size as usize).min(bytes.len());
            let part = bytes[start..end].to_vec();
            let checksum = base64(&Sha256::digest(&part));
            let part_number = index as i32 + 1;
            let sent = part.len() as u64;
            let answer = client
                .upload_part()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .upload_id(&upload_id)
                .part_number(part_number)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .checksum_sha256(&checksum)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| {
                    explain(
                        &format!("uploading part {part_number} of"),
                        "s3:PutObject",
                        &uri,
                        &e,
                    )
                })?;
            progress(sent);
            Ok::<CompletedPart, String>(
                CompletedPart::builder()
                    .part_number(part_number)
                    .set_e_tag(answer.e_tag().map(str::to_string))
                    .checksum_sha256(answer.checksum_sha256().unwrap_or(&checksum))
                    .build(),
            )
        });
    }
    let mut parts = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        match done.map_err(|e| format!("part task failed: {e}"))? {
            Ok(part) => parts.push(part),
            Err(message) => {
                tasks.abort_all();
                return Err(message);
            }
        }
    }
    parts.sort_by_key(|p| p.part_number());
    client
        .complete_multipart_upload()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            explain(
                "completing the multipart upload of",
                "s3:PutObject",
                uri,
                &e,
            )
        })?;
    Ok(count)
}

/// Creates `bucket` unless it exists (`run --local` prepares an emulator with it). Outside
/// us-east-1 S3 wants the bucket's region said.
pub async fn ensure_bucket(
    client: &Client,
    bucket: &str,
    region: Option<&str>,
) -> Result<(), String> {
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    let mut request = client.create_bucket().bucket(bucket);
    if let Some(region) = region.filter(|r| *r != "us-east-1") {
        request = request.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(region.into())
                .build(),
        );
    }
    request.send().await.map(|_| ()).map_err(|e| {
        e.as_service_error()
            .and_then(|s| s.meta().message().map(str::to_string))
            .unwrap_or_else(|| aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            base64(&Sha256::digest(b"")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn only_a_404_head_means_absent() {
        assert!(head_says_absent(Some(404)));
        for status in [Some(403), Some(400), Some(500), Some(503), None] {
            assert!(!head_says_absent(status), "{status:?}");
        }
    }

    #[test]
    fn parts_are_at_least_8_mib_and_at_most_10000() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(part_size(9 * MIB), 8 * MIB);
        assert_eq!(part_size(80_000 * MIB), 8 * MIB);
        let huge = 200_000 * MIB;
        let size = part_size(huge);
        assert!(huge.div_ceil(size) <= MAX_PARTS);
        assert_eq!(size % MIB, 0);
    }
}
