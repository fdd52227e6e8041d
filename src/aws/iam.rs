//! Create or update the IAM roles, inline policies, managed policy attachments and instance
//! profile a plan names (`plan.iam`, rendered by `crate::render::iam`). Idempotent: a second
//! run changes nothing and says so.

use std::time::{Duration, Instant};

use aws_sdk_iam::Client;
use serde_json::Value;

use super::change::{Action, Change};
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

/// One change [`ensure_roles`] made. `Display` gives the line `provision --create-roles` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IamChange {
    /// CreateRole (or a concurrent/retried CreateRole found it created: its trust policy was
    /// then set to the plan's).
    CreatedRole { role: String },
    /// UpdateAssumeRolePolicy: the trust policy differed.
    UpdatedTrustPolicy { role: String },
    /// AttachRolePolicy: a managed policy the plan names was not attached.
    AttachedPolicy { role: String, policy_arn: String },
    /// PutRolePolicy: an inline policy was missing (`replaced: false`) or differed.
    PutInlinePolicy {
        role: String,
        policy: String,
        replaced: bool,
    },
    /// CreateInstanceProfile.
    CreatedInstanceProfile { profile: String },
    /// AddRoleToInstanceProfile.
    AddedRoleToProfile { role: String, profile: String },
}

impl std::fmt::Display for IamChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IamChange::CreatedRole { role } => write!(f, "created role {role}"),
            IamChange::UpdatedTrustPolicy { role } => {
                write!(f, "updated the trust policy of role {role}")
            }
            IamChange::AttachedPolicy { role, policy_arn } => {
                write!(f, "attached {policy_arn} to role {role}")
            }
            IamChange::PutInlinePolicy {
                role,
                policy,
                replaced,
            } => write!(
                f,
                "{} inline policy {policy} of role {role}",
                if *replaced { "updated" } else { "put" }
            ),
            IamChange::CreatedInstanceProfile { profile } => {
                write!(f, "created instance profile {profile}")
            }
            IamChange::AddedRoleToProfile { role, profile } => {
                write!(f, "added role {role} to instance profile {profile}")
            }
        }
    }
}

/// One role's changes as one [`Change`]: `created` when the role was created, `unchanged` when
/// nothing was, else `updated`; the detail lists every change.
pub fn role_change(role: &str, changes: &[IamChange]) -> Change {
    let created = changes
        .iter()
        .any(|c| matches!(c, IamChange::CreatedRole { role: r } if r == role));
    let action = if created {
        Action::Created
    } else if changes.is_empty() {
        Action::Unchanged
    } else {
        Action::Updated
    };
    let detail: Vec<String> = changes.iter().map(ToString::to_string).collect();
    Change::new("iam role", role, action).with_detail(detail.join("; "))
}

/// Brings every role of `plan` to the plan's documents; returns what it changed, in order
/// (empty when everything already matched).
pub async fn ensure_roles(
    config: &aws_config::SdkConfig,
    plan: &IamPlan,
) -> Result<Vec<IamChange>, AwsError> {
    let client = Client::new(config);
    let mut changes = Vec::new();
    for (name, role) in &plan.0 {
        changes.extend(ensure_role(&client, name, role).await?);
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

/// One role, in four reconciliations: the role and its trust policy, its managed policies,
/// its inline policies, its instance profile.
async fn ensure_role(
    client: &Client,
    name: &str,
    role: &RoleDocuments,
) -> Result<Vec<IamChange>, AwsError> {
    let mut changes = Vec::new();
    changes.extend(upsert_role(client, name, role).await?);
    changes.extend(attach_managed_policies(client, name, &role.managed_policy_arns).await?);
    changes.extend(put_inline_policies(client, name, role).await?);
    if let Some(profile) = &role.instance_profile {
        changes.extend(upsert_instance_profile(client, name, profile).await?);
    }
    Ok(changes)
}

/// The role with the plan's trust policy: created, or its trust policy set when it differs.
async fn upsert_role(
    client: &Client,
    name: &str,
    role: &RoleDocuments,
) -> Result<Option<IamChange>, AwsError> {
    let trust = to_json(&role.trust_policy);
    let found = match client.get_role().role_name(name).send().await {
        Ok(found) => found,
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
                Ok(_) => {}
                // A retried call whose first answer was lost, or a concurrent provision:
                // the role is there now; bring its trust policy to the plan's.
                Err(e) if e.is_code("EntityAlreadyExists") => {
                    set_trust_policy(client, name, &trust).await?;
                }
                Err(e) => return Err(e),
            }
            return Ok(Some(IamChange::CreatedRole { role: name.into() }));
        }
    };
    let current = found
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .and_then(parse_document);
    if current.as_ref() == Some(&role.trust_policy) {
        return Ok(None);
    }
    set_trust_policy(client, name, &trust).await?;
    Ok(Some(IamChange::UpdatedTrustPolicy { role: name.into() }))
}

/// Attaches each managed policy the role lacks (others attached by hand stay).
async fn attach_managed_policies(
    client: &Client,
    name: &str,
    arns: &[String],
) -> Result<Vec<IamChange>, AwsError> {
    let mut changes = Vec::new();
    if arns.is_empty() {
        return Ok(changes);
    }
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
    for arn in arns {
        if !attached.contains(arn) {
            client
                .attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(sdk_error("AttachRolePolicy"))?;
            changes.push(IamChange::AttachedPolicy {
                role: name.into(),
                policy_arn: arn.clone(),
            });
        }
    }
    Ok(changes)
}

/// Puts each inline policy that is missing or differs from the plan's document.
async fn put_inline_policies(
    client: &Client,
    name: &str,
    role: &RoleDocuments,
) -> Result<Vec<IamChange>, AwsError> {
    let mut changes = Vec::new();
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
            changes.push(IamChange::PutInlinePolicy {
                role: name.into(),
                policy: policy_name.clone(),
                replaced: current.is_some(),
            });
        }
    }
    Ok(changes)
}

/// The instance profile, created if missing, holding role `name` (an instance profile holds
/// one role: one holding another role is an error that says how to fix it).
async fn upsert_instance_profile(
    client: &Client,
    name: &str,
    profile: &str,
) -> Result<Vec<IamChange>, AwsError> {
    let mut changes = Vec::new();
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
            changes.push(IamChange::CreatedInstanceProfile {
                profile: profile.into(),
            });
            profile_roles(client, profile).await?
        }
    };
    if roles_in_profile.iter().any(|r| r == name) {
        return Ok(changes);
    }
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
    changes.push(IamChange::AddedRoleToProfile {
        role: name.into(),
        profile: profile.into(),
    });
    Ok(changes)
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

/// Deletes one inline policy of a role, then the role: one [`Change`] each (`deleted`, or
/// `absent` when there was nothing to delete). A role holding anything else (another inline
/// policy, a managed policy, an instance profile) is not ours alone: IAM refuses, and the
/// error says so.
pub async fn remove_role_and_policy(
    config: &aws_config::SdkConfig,
    role: &str,
    policy: &str,
) -> Result<[Change; 2], AwsError> {
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
    Ok([
        Change::new("iam role policy", policy, Action::removed(policy_deleted)),
        Change::new("iam role", role, Action::removed(role_deleted)),
    ])
}

/// What [`find_roles`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRoles {
    /// The account the roles are in (from the first role's ARN).
    pub account: Option<String>,
    /// The names that have no role.
    pub missing: Vec<String>,
}

/// Looks up roles by name: which are missing, and (from their ARNs) the account they are in.
pub async fn find_roles(
    config: &aws_config::SdkConfig,
    names: &[&str],
) -> Result<FoundRoles, AwsError> {
    let mut found = FoundRoles {
        account: None,
        missing: Vec::new(),
    };
    for name in names {
        match role_arn(config, name).await? {
            Some(arn) => {
                let account = arn.split(':').nth(4).filter(|a| !a.is_empty());
                found.account = found.account.or_else(|| account.map(str::to_string));
            }
            None => found.missing.push(name.to_string()),
        }
    }
    Ok(found)
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

    #[test]
    fn a_created_role_is_told_by_its_change_not_by_a_string() {
        let created = IamChange::CreatedRole { role: "r".into() };
        let put = IamChange::PutInlinePolicy {
            role: "r".into(),
            policy: "p".into(),
            replaced: false,
        };
        let change = role_change("r", &[created.clone(), put.clone()]);
        assert_eq!(change.action, Action::Created);
        assert_eq!(
            change.detail,
            "created role r; put inline policy p of role r"
        );
        assert_eq!(role_change("r", &[put]).action, Action::Updated);
        assert_eq!(role_change("r", &[]).action, Action::Unchanged);
        // Another role's creation says nothing about this one.
        let other = IamChange::CreatedRole {
            role: "other".into(),
        };
        assert_eq!(role_change("r", &[other]).action, Action::Updated);
    }
}
