//! The scheduler's EventBridge rule and its target, on the default event bus.

use aws_sdk_eventbridge::types::{RuleState, Target as SdkTarget};
use aws_sdk_eventbridge::Client;

use super::change::{Action, Change};
use super::error::{sdk_error, AwsError};
use crate::render::schedule::{PutRule, PutTargets};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub arn: String,
    pub schedule_expression: String,
    pub state: String,
    pub description: String,
}

impl Rule {
    pub fn matches(&self, request: &PutRule) -> bool {
        self.schedule_expression == request.schedule_expression
            && self.state == request.state
            && self.description == request.description
    }
}

/// One target of a rule: its id and the ARN it invokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub arn: String,
}

pub struct Events {
    client: Client,
}

impl Events {
    pub fn new(config: &aws_config::SdkConfig) -> Events {
        Events {
            client: Client::new(config),
        }
    }

    /// The rule, or `None` when there is none by that name.
    pub async fn rule(&self, name: &str) -> Result<Option<Rule>, AwsError> {
        match self.client.describe_rule().name(name).send().await {
            Ok(found) => Ok(Some(Rule {
                arn: found.arn().unwrap_or_default().to_string(),
                schedule_expression: found.schedule_expression().unwrap_or_default().to_string(),
                state: found
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                description: found.description().unwrap_or_default().to_string(),
            })),
            Err(err) => {
                let err = AwsError::from_sdk("DescribeRule", err);
                if err.is_code("ResourceNotFoundException") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Brings the rule to `wanted` (PutRule creates or updates it in place, keeping its ARN);
    /// returns its ARN and what changed.
    pub async fn upsert_rule(&self, wanted: &PutRule) -> Result<(String, Change), AwsError> {
        let current = self.rule(&wanted.name).await?;
        if let Some(found) = &current {
            if found.matches(wanted) {
                let change = Change::new("eventbridge rule", &wanted.name, Action::Unchanged);
                return Ok((found.arn.clone(), change));
            }
        }
        let arn = self.put_rule(wanted).await?;
        let action = if current.is_some() {
            Action::Updated
        } else {
            Action::Created
        };
        Ok((arn, Change::new("eventbridge rule", &wanted.name, action)))
    }

    /// Brings the rule's one target of ours (`target_id`) to `wanted`; other targets on the
    /// rule are left alone.
    pub async fn upsert_target(
        &self,
        wanted: &PutTargets,
        target_id: &str,
    ) -> Result<Change, AwsError> {
        let current = self.targets(&wanted.rule).await?;
        let ours = current.iter().find(|t| t.id == target_id);
        let wanted_arn = wanted
            .targets
            .iter()
            .find(|t| t.id == target_id)
            .map(|t| &t.arn);
        let action = match ours {
            Some(t) if Some(&t.arn) == wanted_arn => Action::Unchanged,
            _ => {
                self.put_targets(wanted).await?;
                if ours.is_some() {
                    Action::Updated
                } else {
                    Action::Created
                }
            }
        };
        Ok(Change::new("rule target", target_id, action))
    }

    /// Removes our target from the rule, then the rule itself unless someone else's targets
    /// are on it (deleting it would break them: the rule is then `kept`). Two changes: the
    /// target's and the rule's.
    pub async fn remove_target_and_rule(
        &self,
        rule: &str,
        target_id: &str,
    ) -> Result<[Change; 2], AwsError> {
        let targets = self.targets(rule).await?;
        let ours = targets.iter().any(|t| t.id == target_id);
        if ours {
            self.remove_targets(rule, &[target_id.to_string()]).await?;
        }
        let target = Change::new("rule target", target_id, Action::removed(ours));
        let others: Vec<&str> = targets
            .iter()
            .filter(|t| t.id != target_id)
            .map(|t| t.id.as_str())
            .collect();
        if !others.is_empty() {
            let kept = Change::new("eventbridge rule", rule, Action::Kept)
                .with_detail(format!("it has other targets: {}", others.join(", ")));
            return Ok([target, kept]);
        }
        let found = self.rule(rule).await?.is_some();
        if found {
            self.delete_rule(rule).await?;
        }
        Ok([
            target,
            Change::new("eventbridge rule", rule, Action::removed(found)),
        ])
    }

    /// PutRule creates the rule or updates it in place; returns its ARN.
    pub async fn put_rule(&self, request: &PutRule) -> Result<String, AwsError> {
        let put = self
            .client
            .put_rule()
            .name(&request.name)
            .schedule_expression(&request.schedule_expression)
            .state(RuleState::from(request.state.as_str()))
            .description(&request.description)
            .send()
            .await
            .map_err(sdk_error("PutRule"))?;
        Ok(put.rule_arn().unwrap_or_default().to_string())
    }

    /// Every target of the rule (none when there is no rule).
    pub async fn targets(&self, rule: &str) -> Result<Vec<Target>, AwsError> {
        let mut targets = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = match self
                .client
                .list_targets_by_rule()
                .rule(rule)
                .set_next_token(next.clone())
                .send()
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    let err = AwsError::from_sdk("ListTargetsByRule", err);
                    if err.is_code("ResourceNotFoundException") {
                        return Ok(Vec::new());
                    }
                    return Err(err);
                }
            };
            targets.extend(page.targets().iter().map(|t| Target {
                id: t.id().to_string(),
                arn: t.arn().to_string(),
            }));
            next = page.next_token().map(str::to_string);
            if next.is_none() {
                return Ok(targets);
            }
        }
    }

    pub async fn put_targets(&self, request: &PutTargets) -> Result<(), AwsError> {
        let targets = request
            .targets
            .iter()
            .map(|t| {
                SdkTarget::builder()
                    .id(&t.id)
                    .arn(&t.arn)
                    .build()
                    .map_err(|e| AwsError {
                        operation: "PutTargets",
                        code: None,
                        message: e.to_string(),
                        transient: false,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let put = self
            .client
            .put_targets()
            .rule(&request.rule)
            .set_targets(Some(targets))
            .send()
            .await
            .map_err(sdk_error("PutTargets"))?;
        if put.failed_entry_count() > 0 {
            let why: Vec<String> = put
                .failed_entries()
                .iter()
                .map(|f| {
                    format!(
                        "{}: {} {}",
                        f.target_id().unwrap_or("?"),
                        f.error_code().unwrap_or(""),
                        f.error_message().unwrap_or("")
                    )
                })
                .collect();
            return Err(AwsError {
                operation: "PutTargets",
                code: None,
                message: format!("the rule refused its target: {}", why.join("; ")),
                transient: false,
            });
        }
        Ok(())
    }

    /// Removes the targets with these ids (only these: another tool's targets stay).
    pub async fn remove_targets(&self, rule: &str, ids: &[String]) -> Result<(), AwsError> {
        self.client
            .remove_targets()
            .rule(rule)
            .set_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(sdk_error("RemoveTargets"))?;
        Ok(())
    }

    /// Deletes the rule; `false` when there was none.
    pub async fn delete_rule(&self, name: &str) -> Result<bool, AwsError> {
        match self.client.delete_rule().name(name).send().await {
            Ok(_) => Ok(true),
            Err(err) => {
                let err = AwsError::from_sdk("DeleteRule", err);
                if err.is_code("ResourceNotFoundException") {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }
}
