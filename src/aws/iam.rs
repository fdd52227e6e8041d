//! Create or update the IAM roles, inline policies, managed policy attachments and instance
//! profile a plan names (`plan.iam`, rendered by `crate::render::iam`). Idempotent: a second
//! run changes nothing and says so.

use std::time::{Duration, Instant};

use aws_sdk_iam::Client;
use serde_json::Value;

use super::error::{sdk_error, AwsError};
use crate::render::iam::{IamPlan, RoleDocuments};

/// IAM returns policy documents URL-encoded (RFC 3986); `+` is left alone, as IAM does.
pub fn url_decode(text: &str) -> String {
    // A `%` not followed by two hex digits stays as it is; bytes that are not UTF-8 become U+FFFD.
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// A policy document as IAM returned it, parsed; `None` if it is not JSON.
pub fn parse_document(text: &str) -> Option<Value> {
    serde_json::from_str(text)
        .ok()
        .or_else(|| serde_json::from_str(&url_decode(text)).ok())
}

/// IAM descriptions accept tab, newlines and Latin-1 printable characters only.
fn iam_description(text: &str) -> Option<String> {
    let ok = |c: char| matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{a1}'..='\u{ff}');
    text.chars()
        .all(ok)
        .then(|| text.chars().take(1000).collect())
}

fn to_json(document: &Value) -> String {
    serde_json::to_string(document).expect("a JSON value always serializes")
}

/// Brings every role of `plan` to the plan's documents; returns what it changed, in order
/// (empty when everything already matched).
pub async fn ensure_roles(
    config: &aws_config::SdkConfig,
    plan: &IamPlan,
) -> Result<Vec<String>, AwsError> {
    let client = Client::new(config);
    let mut changes = Vec::new();
    for (name, role) in &plan.0 {
        ensure_role(&client, name, role, &mut changes).await?;
    }
    Ok(changes)
}

/// UpdateAssumeRolePolicy: sets role `name`'s trust policy to `trust` (JSON text).
async fn set_trust_policy(client: &Client, name: &str, trust: &str) -> Result<(), AwsError> {
    client
        .update_assume_role_policy()
        .role_name(name)
        .policy_document(trust)
        .send()
        .await
        .map_err(sdk_error("UpdateAssumeRolePolicy"))?;
    Ok(())
}

async fn ensure_role(
    client: &Client,
    name: &str,
    role: &RoleDocuments,
    changes: &mut Vec<String>,
) -> Result<(), AwsError> {
    let trust = to_json(&role.trust_policy);
    match client.get_role().role_name(name).send().await {
        Ok(found) => {
            let current = found
                .role()
                .and_then(|r| r.assume_role_policy_document())
                .and_then(parse_document);
            if current.as_ref() != Some(&role.trust_policy) {
                set_trust_policy(client, name, &trust).await?;
                changes.push(format!("updated the trust policy of role {name}"));
            }
        }
        Err(err) => {
            let err = AwsError::from_sdk("GetRole", err);
            if !err.is_code("NoSuchEntity") {
                return Err(err);
            }
            let created = client
                .create_role()
                .role_name(name)
                .assume_role_policy_document(&trust)
                .set_description(iam_description(&role.purpose))
                .send()
                .await
                .map_err(sdk_error("CreateRole"));
            match created {
                Ok(_) => changes.push(format!("created role {name}")),
                // A retried call whose first answer was lost, or a concurrent provision:
                // the role is there now; bring its trust policy to the plan's.
                Err(e) if e.is_code("EntityAlreadyExists") => {
                    set_trust_policy(client, name, &trust).await?;
                    changes.push(format!("created role {name}"));
                }
                Err(e) => return Err(e),
            }
        }
    }

    if !role.managed_policy_arns.is_empty() {
        let mut attached = Vec::new();
        let mut pages = client
            .list_attached_role_policies()
            .role_name(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk_error("ListAttachedRolePolicies"))?;
            attached.extend(
                page.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_string)),
            );
        }
        for arn in &role.managed_policy_arns {
            if !attached.contains(arn) {
                client
                    .attach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map_err(sdk_error("AttachRolePolicy"))?;
                changes.push(format!("attached {arn} to role {name}"));
            }
        }
    }

    for (policy_name, document) in &role.inline_policies {
        let current = match client
            .get_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .send()
            .await
        {
            Ok(found) => parse_document(found.policy_document()),
            Err(err) => {
                let err = AwsError::from_sdk("GetRolePolicy", err);
                if !err.is_code("NoSuchEntity") {
                    return Err(err);
                }
                None
            }
        };
        if current.as_ref() != Some(document) {
            client
                .put_role_policy()
                .role_name(name)
                .policy_name(policy_name)
                .policy_document(to_json(document))
                .send()
                .await
                .map_err(sdk_error("PutRolePolicy"))?;
            changes.push(format!(
                "{} inline policy {policy_name} of role {name}",
                if current.is_some() { "updated" } else { "put" }
            ));
        }
    }

    if let Some(profile) = &role.instance_profile {
        let roles_in_profile = match client
            .get_instance_profile()
            .instance_profile_name(profile)
            .send()
            .await
        {
            Ok(found) => found
                .instance_profile()
                .map(|p| {
                    p.roles()
                        .iter()
                        .map(|r| r.role_name().to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            Err(err) => {
                let err = AwsError::from_sdk("GetInstanceProfile", err);
                if !err.is_code("NoSuchEntity") {
                    return Err(err);
                }
                match client
                    .create_instance_profile()
                    .instance_profile_name(profile)
                    .send()
                    .await
                    .map_err(sdk_error("CreateInstanceProfile"))
                {
                    Ok(_) => {}
                    // Created by a retry whose first answer was lost, or concurrently.
                    Err(e) if e.is_code("EntityAlreadyExists") => {}
                    Err(e) => return Err(e),
                }
                changes.push(format!("created instance profile {profile}"));
                profile_roles(client, profile).await?
            }
        };
        if !roles_in_profile.iter().any(|r| r == name) {
            // An instance profile holds one role; EMR needs ours in it.
            if let Some(other) = roles_in_profile.first() {
                return Err(AwsError {
                    operation: "AddRoleToInstanceProfile",
                    code: None,
                    message: format!(
                        "instance profile {profile} already holds role {other}; an instance \
                         profile holds one role. Remove it (aws iam \
                         remove-role-from-instance-profile --instance-profile-name {profile} \
                         --role-name {other}) or name another profile in the spec's roles"
                    ),
                    transient: false,
                });
            }
            let added = client
                .add_role_to_instance_profile()
                .instance_profile_name(profile)
                .role_name(name)
                .send()
                .await
                .map_err(sdk_error("AddRoleToInstanceProfile"));
            if let Err(e) = added {
                // LimitExceeded: the profile has its one role. If a retry of this very call
                // (first answer lost) put ours there, that is success.
                if !(e.is_code("LimitExceeded")
                    && profile_roles(client, profile)
                        .await?
                        .iter()
                        .any(|r| r == name))
                {
                    return Err(e);
                }
            }
            changes.push(format!("added role {name} to instance profile {profile}"));
        }
    }
    Ok(())
}

async fn profile_roles(client: &Client, profile: &str) -> Result<Vec<String>, AwsError> {
    let found = client
        .get_instance_profile()
        .instance_profile_name(profile)
        .send()
        .await
        .map_err(sdk_error("GetInstanceProfile"))?;
    Ok(found
        .instance_profile()
        .map(|p| {
            p.roles()
                .iter()
                .map(|r| r.role_name().to_string())
                .collect()
        })
        .unwrap_or_default())
}

/// Waits until IAM shows every role, and every instance profile with its role, then `settle`.
///
/// IAM is eventually consistent: a role that GetRole returns may still be unknown to EMR and
/// EC2 for several seconds, and RunJobFlow then fails with "Invalid InstanceProfile" or
/// "service role is not valid". Reading the roles back covers IAM's own lag; the fixed settle
/// delay covers the other services, which no API lets us observe. Against an emulator
/// (endpoint overridden) nothing lags, so callers pass a zero settle there.
pub async fn await_propagation(
    config: &aws_config::SdkConfig,
    plan: &IamPlan,
    settle: Duration,
    deadline: Duration,
) -> Result<(), AwsError> {
    let client = Client::new(config);
    let started = Instant::now();
    for (name, role) in &plan.0 {
        loop {
            let role_visible = client.get_role().role_name(name).send().await.is_ok();
            let profile_ready = match &role.instance_profile {
                None => true,
                Some(profile) => client
                    .get_instance_profile()
                    .instance_profile_name(profile)
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.instance_profile().cloned())
                    .is_some_and(|p| p.roles().iter().any(|r| r.role_name() == name)),
            };
            if role_visible && profile_ready {
                break;
            }
            if started.elapsed() > deadline {
                return Err(AwsError {
                    operation: "GetRole",
                    code: None,
                    message: format!(
                        "role {name} (or its instance profile) is still not visible after {} s; \
                         try again in a minute",
                        deadline.as_secs()
                    ),
                    transient: true,
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    tokio::time::sleep(settle).await;
    Ok(())
}

/// The role's ARN, or `None` when there is no role by that name.
pub async fn role_arn(
    config: &aws_config::SdkConfig,
    name: &str,
) -> Result<Option<String>, AwsError> {
    match Client::new(config).get_role().role_name(name).send().await {
        Ok(found) => Ok(found.role().map(|r| r.arn().to_string())),
        Err(err) => {
            let err = AwsError::from_sdk("GetRole", err);
            if err.is_code("NoSuchEntity") {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// Deletes one inline policy of a role, then the role; what was there to delete comes back as
/// (policy deleted, role deleted). A role holding anything else (another inline policy, a
/// managed policy, an instance profile) is not ours alone: IAM refuses, and the error says so.
pub async fn delete_role_and_policy(
    config: &aws_config::SdkConfig,
    role: &str,
    policy: &str,
) -> Result<(bool, bool), AwsError> {
    let client = Client::new(config);
    let absent = |err: AwsError| {
        if err.is_code("NoSuchEntity") {
            Ok(false)
        } else {
            Err(err)
        }
    };
    let policy_deleted = match client
        .delete_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
    {
        Ok(_) => true,
        Err(err) => absent(AwsError::from_sdk("DeleteRolePolicy", err))?,
    };
    let role_deleted = match client.delete_role().role_name(role).send().await {
        Ok(_) => true,
        Err(err) => absent(AwsError::from_sdk("DeleteRole", err))?,
    };
    Ok((policy_deleted, role_deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_iam_url_encoding() {
        assert_eq!(
            url_decode("%7B%22Version%22%3A%222012-10-17%22%7D"),
            r#"{"Version":"2012-10-17"}"#
        );
        assert_eq!(url_decode("a%2"), "a%2");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz"), "%zz");
        // Bytes that are not UTF-8 once decoded become U+FFFD.
        assert_eq!(url_decode("a%FFb"), "a\u{FFFD}b");
        assert_eq!(url_decode("a+b"), "a+b");
    }

    #[test]
    fn documents_parse_plain_or_encoded() {
        let expected: Value = serde_json::json!({"Version": "2012-10-17"});
        assert_eq!(
            parse_document(r#"{"Version":"2012-10-17"}"#),
            Some(expected.clone())
        );
        assert_eq!(
            parse_document("%7B%22Version%22%3A%222012-10-17%22%7D"),
            Some(expected)
        );
        assert_eq!(parse_document("not json"), None);
    }

    #[test]
    fn descriptions_outside_latin1_are_left_out() {
        assert_eq!(
            iam_description("EMR service role").as_deref(),
            Some("EMR service role")
        );
        assert_eq!(iam_description("a → b"), None);
    }
}
