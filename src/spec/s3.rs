//! `s3://bucket/key` URIs, checked the way S3 and EMRFS will check them.

use std::fmt;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    /// Parses `s3://bucket/key`; the error says what is wrong and how to write it.
    pub fn parse(text: &str) -> Result<S3Uri, String> {
        let Some(rest) = text.strip_prefix("s3://") else {
            for scheme in ["s3a://", "s3n://"] {
                if text.starts_with(scheme) {
                    return Err(format!(
                        "`{scheme}` is a Hadoop connector scheme; on EMR write `s3://` (EMRFS)"
                    ));
                }
            }
            if text.starts_with("https://") || text.starts_with("http://") {
                return Err("an HTTP URL is not an S3 URI; write `s3://bucket/key`".into());
            }
            return Err("an S3 URI starts with `s3://`, e.g. `s3://my-bucket/prefix/`".into());
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket_name(bucket)?;
        if key.contains("//") {
            return Err("the key has an empty path segment (`//`)".into());
        }
        if key.chars().any(|c| c.is_control()) {
            return Err("the key has a control character".into());
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The same location as a prefix: ends with `/` (unless it is the bucket root).
    pub fn as_prefix(&self) -> S3Uri {
        let mut key = self.key.clone();
        if !key.is_empty() && !key.ends_with('/') {
            key.push('/');
        }
        S3Uri {
            bucket: self.bucket.clone(),
            key,
        }
    }

    /// Appends a relative key to this prefix.
    pub fn join(&self, relative: &str) -> S3Uri {
        let prefix = self.as_prefix();
        S3Uri {
            bucket: prefix.bucket,
            key: format!("{}{}", prefix.key, relative.trim_start_matches('/')),
        }
    }

    /// The ARN of this location's objects, for IAM: `arn:aws:s3:::bucket/key*`.
    pub fn objects_arn(&self) -> String {
        format!("arn:aws:s3:::{}/{}*", self.bucket, self.key)
    }

    pub fn bucket_arn(&self) -> String {
        format!("arn:aws:s3:::{}", self.bucket)
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl Serialize for S3Uri {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// S3 general purpose bucket naming rules.
fn check_bucket_name(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("the bucket name is missing: write `s3://bucket/key`".into());
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "bucket name `{bucket}` must be 3 to 63 characters long"
        ));
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "bucket name `{bucket}` has `{c}`; bucket names use lowercase letters, digits, `.` and `-`"
        ));
    }
    let first = bucket.chars().next().unwrap_or('-');
    let last = bucket.chars().last().unwrap_or('-');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err(format!(
            "bucket name `{bucket}` must begin and end with a letter or digit"
        ));
    }
    if bucket.contains("..") {
        return Err(format!("bucket name `{bucket}` has two dots in a row"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_joins() {
        let uri = S3Uri::parse("s3://example-ads-data/emrship").unwrap();
        assert_eq!(
            uri.join("match-rate/x.zip").to_string(),
            "s3://example-ads-data/emrship/match-rate/x.zip"
        );
        assert_eq!(uri.objects_arn(), "arn:aws:s3:::example-ads-data/emrship*");
    }

    #[test]
    fn rejects_what_s3_would_reject() {
        for bad in [
            "s3a://b/k",
            "https://b.s3.amazonaws.com/k",
            "s3://",
            "s3://Bad_Bucket/k",
            "s3://ab/k",
            "s3://bucket-/k",
            "s3://b..c/k",
            "s3://bucket/a//b",
        ] {
            assert!(S3Uri::parse(bad).is_err(), "{bad}");
        }
    }
}
