//! One AWS SDK configuration per run: the standard credential chain, `--profile`, the region,
//! the endpoint override, and explicit retry and timeout settings.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::ProvideCredentials;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
    /// Overrides every service's endpoint. Without it the SDK still honours AWS_ENDPOINT_URL
    /// and AWS_ENDPOINT_URL_<SERVICE>.
    pub endpoint_url: Option<String>,
}

/// Attempts per call, first included. Standard retry mode (exponential backoff with full
/// jitter, throttling errors included): adaptive mode's client-side rate limiter starts with no
/// measured rate in a fresh process and held the first retry after a throttle for the whole
/// backoff cap, which a short-lived CLI feels on every run.
pub const MAX_ATTEMPTS: u32 = 8;

pub async fn load(options: &AwsOptions) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(120))
                .build(),
        );
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Whether calls go somewhere other than AWS's own endpoints (an emulator needs path-style S3
/// addressing, for one).
pub fn endpoint_overridden(options: &AwsOptions) -> bool {
    options.endpoint_url.is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}

/// Resolves credentials once, before any request: "no credentials" is then one clear error
/// instead of a dispatch failure on the first call.
pub async fn require_credentials(config: &SdkConfig) -> Result<(), String> {
    const HOW: &str = "configure credentials: `aws configure` or `aws sso login`, a profile (AWS_PROFILE or --profile), \
                       AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an instance/container role";
    let Some(provider) = config.credentials_provider() else {
        return Err(format!("no AWS credentials provider is configured; {HOW}"));
    };
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|e| {
            // The chain's own account of what it tried, without the Debug dump that
            // DisplayErrorContext appends.
            let mut tried = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                tried.push_str(": ");
                tried.push_str(&cause.to_string());
                source = cause.source();
            }
            format!("no AWS credentials found ({tried}); {HOW}")
        })
}
