//! The scheduler's Lambda function: read its state, create it, update its code and
//! configuration only where they differ from the rendered request, and manage the one
//! permission statement that lets the EventBridge rule invoke it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionConfiguration, LastUpdateStatus, Runtime, State,
};
use aws_sdk_lambda::Client;
use serde_json::Value;

use super::change::{Action, Change};
use super::error::{sdk_error, AwsError};
use crate::render::schedule::{AddPermission, CreateFunction};

/// How long CreateFunction keeps trying while IAM propagates a role created moments ago.
pub const ROLE_PROPAGATION: Duration = Duration::from_secs(90);
/// How long a function update may take before we give up waiting for it.
pub const FUNCTION_READY_WITHIN: Duration = Duration::from_secs(300);

/// What the function is now, as far as `schedule` compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionState {
    pub arn: String,
    pub code_sha256: String,
    pub runtime: String,
    pub handler: String,
    pub role: String,
    pub architectures: Vec<String>,
    pub memory_size: i32,
    pub timeout: i32,
    pub environment: Vec<(String, String)>,
    pub description: String,
    pub tags: Vec<(String, String)>,
    pub state: String,
    pub last_update_status: String,
    pub last_modified: String,
}

impl FunctionState {
    fn from_configuration(config: &FunctionConfiguration, tags: Vec<(String, String)>) -> Self {
        let mut environment: Vec<(String, String)> = config
            .environment()
            .and_then(|e| e.variables())
            .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        environment.sort();
        FunctionState {
            arn: config.function_arn().unwrap_or_default().to_string(),
            code_sha256: config.code_sha256().unwrap_or_default().to_string(),
            runtime: config
                .runtime()
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
            handler: config.handler().unwrap_or_default().to_string(),
            role: config.role().unwrap_or_default().to_string(),
            architectures: config
                .architectures()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            memory_size: config.memory_size().unwrap_or_default(),
            timeout: config.timeout().unwrap_or_default(),
            environment,
            description: config.description().unwrap_or_default().to_string(),
            tags,
            state: config
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            last_update_status: config
                .last_update_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            last_modified: config.last_modified().unwrap_or_default().to_string(),
        }
    }

    /// Whether the configuration (not the code) matches the request.
    pub fn configuration_matches(&self, request: &CreateFunction) -> bool {
        let mut wanted: Vec<(String, String)> = request
            .environment
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        wanted.sort();
        self.runtime == request.runtime
            && self.handler == request.handler
            && self.role == request.role
            && self.memory_size == request.memory_size
            && self.timeout == request.timeout
            && self.environment == wanted
            && self.description == request.description
    }

    /// Whether the deployed code is the request's zip, built for the request's architecture.
    pub fn code_matches(&self, request: &CreateFunction) -> bool {
        self.code_sha256 == request.code.code_sha256 && self.architectures == request.architectures
    }

    /// Tags the request has that the function lacks or holds with another value.
    pub fn missing_tags(&self, request: &CreateFunction) -> HashMap<String, String> {
        request
            .tags
            .iter()
            .filter(|(k, v)| !self.tags.iter().any(|(tk, tv)| tk == *k && tv == *v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

pub struct Lambda {
    client: Client,
}

impl Lambda {
    pub fn new(config: &aws_config::SdkConfig) -> Lambda {
        Lambda {
            client: Client::new(config),
        }
    }

    /// The function, or `None` when there is none by that name.
    pub async fn function(&self, name: &str) -> Result<Option<FunctionState>, AwsError> {
        match self.client.get_function().function_name(name).send().await {
            Ok(found) => {
                let Some(config) = found.configuration() else {
                    return Ok(None);
                };
                let mut tags: Vec<(String, String)> = found
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                tags.sort();
                Ok(Some(FunctionState::from_configuration(config, tags)))
            }
            Err(err) => {
                let err = AwsError::from_sdk("GetFunction", err);
                if err.is_code("ResourceNotFoundException") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// CreateFunction; returns the function's ARN. Right after its role is created, Lambda may not be able to assume it yet
    /// (IAM is eventually consistent): that error is retried with backoff within `patience`.
    pub async fn create_function(
        &self,
        request: &CreateFunction,
        zip: &[u8],
        patience: Duration,
        report: &dyn Fn(&str),
    ) -> Result<String, AwsError> {
        let started = Instant::now();
        let mut pause = Duration::from_secs(1);
        loop {
            let sent = self
                .client
                .create_function()
                .function_name(&request.function_name)
                .runtime(Runtime::from(request.runtime.as_str()))
                .handler(&request.handler)
                .role(&request.role)
                .set_architectures(Some(architectures(&request.architectures)))
                .memory_size(request.memory_size)
                .timeout(request.timeout)
                .environment(environment(request))
                .description(&request.description)
                .set_tags(Some(request.tags.clone().into_iter().collect()))
                .code(
                    aws_sdk_lambda::types::FunctionCode::builder()
                        .zip_file(Blob::new(zip.to_vec()))
                        .build(),
                )
                .send()
                .await
                .map_err(sdk_error("CreateFunction"));
            match sent {
                Ok(created) => return Ok(created.function_arn().unwrap_or_default().to_string()),
                Err(e) if role_not_ready(&e) && started.elapsed() + pause < patience => {
                    report(&format!(
                        "  the new role is not assumable by Lambda yet (IAM propagation); \
                         trying again in {} s",
                        pause.as_secs()
                    ));
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(8));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Brings the function to `wanted`: creates it with `zip`, or updates its code, its
    /// configuration and its tags where they differ (waiting out each update, as Lambda
    /// refuses a second one while the first is in progress). Returns its ARN and what changed.
    /// `report` gets a line before each slow call.
    pub async fn upsert_function(
        &self,
        wanted: &CreateFunction,
        zip: &[u8],
        report: &dyn Fn(&str),
    ) -> Result<(String, Change), AwsError> {
        let name = &wanted.function_name;
        let Some(current) = self.function(name).await? else {
            report(&format!("creating function {name}…"));
            let arn = self
                .create_function(wanted, zip, ROLE_PROPAGATION, report)
                .await?;
            self.wait_ready(name, FUNCTION_READY_WITHIN).await?;
            return Ok((arn, Change::new("lambda function", name, Action::Created)));
        };
        let mut updated = Vec::new();
        if !current.code_matches(wanted) {
            report(&format!("updating the code of {name}…"));
            self.wait_ready(name, FUNCTION_READY_WITHIN).await?;
            self.update_code(wanted, zip).await?;
            updated.push("code");
        }
        if !current.configuration_matches(wanted) {
            report(&format!("updating the configuration of {name}…"));
            self.wait_ready(name, FUNCTION_READY_WITHIN).await?;
            self.update_configuration(wanted).await?;
            updated.push("configuration");
        }
        let tags = current.missing_tags(wanted);
        if !tags.is_empty() {
            self.tag(&current.arn, tags).await?;
            updated.push("tags");
        }
        let action = if updated.is_empty() {
            Action::Unchanged
        } else {
            self.wait_ready(name, FUNCTION_READY_WITHIN).await?;
            Action::Updated
        };
        let change = Change::new("lambda function", name, action).with_detail(updated.join(", "));
        Ok((current.arn, change))
    }

    /// Brings the invoke permission statement to `wanted`: added when missing, replaced when
    /// it names another source ARN, left alone when it matches.
    pub async fn upsert_permission(&self, wanted: &AddPermission) -> Result<Change, AwsError> {
        let statements = self.policy_statements(&wanted.function_name).await?;
        let existing = statements
            .iter()
            .find(|s| statement_id(s) == Some(wanted.statement_id.as_str()));
        let action = match existing {
            Some(s) if statement_source_arn(s) == Some(wanted.source_arn.as_str()) => {
                Action::Unchanged
            }
            Some(_) => {
                self.remove_permission(&wanted.function_name, &wanted.statement_id)
                    .await?;
                self.add_permission(wanted).await?;
                Action::Updated
            }
            None => {
                self.add_permission(wanted).await?;
                Action::Created
            }
        };
        Ok(Change::new(
            "invoke permission",
            &wanted.statement_id,
            action,
        ))
    }

    /// Removes one permission statement: `deleted`, or `absent` when it (or the function) was
    /// not there.
    pub async fn remove_statement(
        &self,
        function: &str,
        statement: &str,
    ) -> Result<Change, AwsError> {
        let found = self.remove_permission(function, statement).await?;
        Ok(Change::new(
            "invoke permission",
            statement,
            Action::removed(found),
        ))
    }

    /// Deletes the function: `deleted`, or `absent` when there was none.
    pub async fn remove_function(&self, name: &str) -> Result<Change, AwsError> {
        let found = self.delete_function(name).await?;
        Ok(Change::new("lambda function", name, Action::removed(found)))
    }

    pub async fn update_code(&self, request: &CreateFunction, zip: &[u8]) -> Result<(), AwsError> {
        self.client
            .update_function_code()
            .function_name(&request.function_name)
            .zip_file(Blob::new(zip.to_vec()))
            .set_architectures(Some(architectures(&request.architectures)))
            .send()
            .await
            .map_err(sdk_error("UpdateFunctionCode"))?;
        Ok(())
    }

    pub async fn update_configuration(&self, request: &CreateFunction) -> Result<(), AwsError> {
        self.client
            .update_function_configuration()
            .function_name(&request.function_name)
            .runtime(Runtime::from(request.runtime.as_str()))
            .handler(&request.handler)
            .role(&request.role)
            .memory_size(request.memory_size)
            .timeout(request.timeout)
            .environment(environment(request))
            .description(&request.description)
            .send()
            .await
            .map_err(sdk_error("UpdateFunctionConfiguration"))?;
        Ok(())
    }

    pub async fn tag(&self, arn: &str, tags: HashMap<String, String>) -> Result<(), AwsError> {
        self.client
            .tag_resource()
            .resource(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(sdk_error("TagResource"))?;
        Ok(())
    }

    /// Waits until the function is Active and its last update Successful: Lambda refuses a
    /// second update while one is in progress (ResourceConflictException).
    pub async fn wait_ready(&self, name: &str, deadline: Duration) -> Result<(), AwsError> {
        let started = Instant::now();
        loop {
            let config = self
                .client
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(sdk_error("GetFunctionConfiguration"))?;
            let state = config.state().cloned();
            let update = config.last_update_status().cloned();
            if state == Some(State::Failed) || update == Some(LastUpdateStatus::Failed) {
                return Err(AwsError {
                    operation: "GetFunctionConfiguration",
                    code: None,
                    message: format!(
                        "function {name} failed to become ready: {}",
                        config
                            .last_update_status_reason()
                            .or(config.state_reason())
                            .unwrap_or("no reason given")
                    ),
                    transient: false,
                });
            }
            let active = matches!(state, None | Some(State::Active));
            let updated = matches!(update, None | Some(LastUpdateStatus::Successful));
            if active && updated {
                return Ok(());
            }
            if started.elapsed() > deadline {
                return Err(AwsError {
                    operation: "GetFunctionConfiguration",
                    code: None,
                    message: format!(
                        "function {name} is still not ready after {} s (state {:?}, last update \
                         {:?}); run `emrship schedule` again in a minute",
                        deadline.as_secs(),
                        state,
                        update
                    ),
                    transient: true,
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The statements of the function's resource policy (none when it has no policy or no
    /// function).
    pub async fn policy_statements(&self, name: &str) -> Result<Vec<Value>, AwsError> {
        match self.client.get_policy().function_name(name).send().await {
            Ok(found) => {
                let policy: Value = found
                    .policy()
                    .and_then(|p| serde_json::from_str(p).ok())
                    .unwrap_or(Value::Null);
                Ok(policy["Statement"].as_array().cloned().unwrap_or_default())
            }
            Err(err) => {
                let err = AwsError::from_sdk("GetPolicy", err);
                if err.is_code("ResourceNotFoundException") {
                    Ok(Vec::new())
                } else {
                    Err(err)
                }
            }
        }
    }

    pub async fn add_permission(&self, request: &AddPermission) -> Result<(), AwsError> {
        self.client
            .add_permission()
            .function_name(&request.function_name)
            .statement_id(&request.statement_id)
            .action(&request.action)
            .principal(&request.principal)
            .source_arn(&request.source_arn)
            .set_source_account(request.source_account.clone())
            .send()
            .await
            .map_err(sdk_error("AddPermission"))?;
        Ok(())
    }

    /// Removes one statement; `false` when it (or the function) was not there.
    pub async fn remove_permission(&self, name: &str, statement: &str) -> Result<bool, AwsError> {
        match self
            .client
            .remove_permission()
            .function_name(name)
            .statement_id(statement)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) => absent_is_false(AwsError::from_sdk("RemovePermission", err)),
        }
    }

    /// Deletes the function; `false` when there was none.
    pub async fn delete_function(&self, name: &str) -> Result<bool, AwsError> {
        match self
            .client
            .delete_function()
            .function_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) => absent_is_false(AwsError::from_sdk("DeleteFunction", err)),
        }
    }
}

fn absent_is_false(err: AwsError) -> Result<bool, AwsError> {
    if err.is_code("ResourceNotFoundException") {
        Ok(false)
    } else {
        Err(err)
    }
}

/// "The role defined for the function cannot be assumed by Lambda": a role created seconds ago.
fn role_not_ready(err: &AwsError) -> bool {
    err.is_code("InvalidParameterValueException") && err.message.contains("cannot be assumed")
}

fn architectures(names: &[String]) -> Vec<Architecture> {
    names
        .iter()
        .map(|name| Architecture::from(name.as_str()))
        .collect()
}

fn environment(request: &CreateFunction) -> Environment {
    Environment::builder()
        .set_variables(Some(
            request.environment.variables.clone().into_iter().collect(),
        ))
        .build()
}

/// The `AWS:SourceArn` condition of a permission statement, as Lambda stores it.
pub fn statement_source_arn(statement: &Value) -> Option<&str> {
    statement["Condition"]["ArnLike"]["AWS:SourceArn"].as_str()
}

/// The `Sid` of a statement.
pub fn statement_id(statement: &Value) -> Option<&str> {
    statement["Sid"].as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_source_arn_lambda_stores() {
        let statement = json!({
            "Sid": "emrship-events-invoke",
            "Effect": "Allow",
            "Principal": { "Service": "events.amazonaws.com" },
            "Action": "lambda:InvokeFunction",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "Condition": { "ArnLike": { "AWS:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/r" } }
        });
        assert_eq!(
            statement_source_arn(&statement),
            Some("arn:aws:events:us-east-1:123456789012:rule/r")
        );
        assert_eq!(statement_id(&statement), Some("emrship-events-invoke"));
    }
}
