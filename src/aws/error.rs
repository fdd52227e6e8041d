//! One error type for failed AWS calls: which operation, the service's error code and message,
//! and whether trying again later may help (throttling, timeouts, dropped connections).

use std::fmt;

use aws_sdk_emr::error::{ProvideErrorMetadata, SdkError};

/// Error codes AWS uses for throttling (the SDK's own list, `aws_runtime` THROTTLING_ERRORS)
/// plus the 5xx-style codes emulators and services return while overloaded.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServerError",
];

#[derive(Debug, Clone)]
pub struct AwsError {
    /// The API operation, e.g. `RunJobFlow`.
    pub operation: &'static str,
    /// The service's error code (`InvalidRequestException`, `NoSuchEntity`, …); `None` when no
    /// response came back (connection refused, timeout, no credentials).
    pub code: Option<String>,
    pub message: String,
    /// Trying again later may succeed (after the SDK's own retries already gave up).
    pub transient: bool,
}

/// `map_err` adapter for any service's SDK call: `.send().await.map_err(sdk_error("RunJobFlow"))`.
pub fn sdk_error<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    move |err| AwsError::from_sdk(operation, err)
}

impl AwsError {
    pub fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let transient = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
            SdkError::ResponseError(_) => true,
            SdkError::ServiceError(_) => code
                .as_deref()
                .is_some_and(|c| TRANSIENT_CODES.contains(&c)),
            _ => false,
        };
        let message = match (&err, err.message()) {
            (SdkError::ServiceError(_), Some(message)) => message.to_string(),
            // Outside a service answer, the SDK's chain of causes says what went wrong
            // ("failed to construct request: no credentials in the chain", "connection refused").
            _ => aws_sdk_emr::error::DisplayErrorContext(&err).to_string(),
        };
        AwsError {
            operation,
            code,
            message,
            transient,
        }
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} failed: {code}: {}", self.operation, self.message),
            None => write!(f, "{} failed: {}", self.operation, self.message),
        }
    }
}

impl std::error::Error for AwsError {}
