//! S3 said 403 / AccessDenied: name the IAM action that was missing and the resource, from the
//! line itself (IAM's own "is not authorized to perform" text) or from the operation and URI
//! around it (EMRFS, the AWS CLI, object_store).

use super::{mentions, regex, CauseKind, Diagnosis, Evidence, LogText};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Denial {
    action: Option<String>,
    resource: Option<String>,
    principal: Option<String>,
    evidence: Vec<Evidence>,
}

/// The IAM action an S3 operation (as the SDKs, EMRFS, Hadoop or object_store name it) needs.
fn action_for_operation(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&[
        "listobjects",
        "listbucket",
        "liststatus",
        "list request",
        "?list-type",
        "listing",
    ]) {
        Some("s3:ListBucket")
    } else if has(&[
        "putobject",
        "createmultipartupload",
        "uploadpart",
        "completemultipartupload",
        "copyobject",
        "upload failed",
        "put request",
        "performing put",
        "error writing",
        "cannot write",
        " write ",
        "writing",
    ]) {
        Some("s3:PutObject")
    } else if has(&["deleteobject", "delete request", "performing delete"]) {
        Some("s3:DeleteObject")
    } else if has(&[
        "getobject",
        "headobject",
        "getfilestatus",
        "download failed",
        "get request",
        "head request",
        "performing get",
        "performing head",
        "error reading",
        "cannot read",
        "open(",
        " open ",
        "opening",
        "reading",
        " read ",
    ]) {
        Some("s3:GetObject")
    } else {
        None
    }
}

/// `arn:aws:s3:::bucket/key` (or the bucket's ARN for ListBucket) from an s3:// URI or an S3 URL.
fn resource_arn(text: &str, action: Option<&str>) -> Option<String> {
    let s3_uri = regex(r#"s3[an]?://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/?([^\s'"`,;)\]]*)"#);
    let virtual_host = regex(
        r#"https?://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])\.s3[a-z0-9.\-]*\.amazonaws\.com/([^\s'"?`]*)"#,
    );
    let (bucket, key) = s3_uri
        .captures(text)
        .or_else(|| virtual_host.captures(text))
        .map(|c| {
            (
                c[1].to_string(),
                c[2].trim_end_matches(['.', ':']).to_string(),
            )
        })?;
    if action == Some("s3:ListBucket") || key.is_empty() {
        return Some(format!("arn:aws:s3:::{bucket}"));
    }
    Some(format!("arn:aws:s3:::{bucket}/{key}"))
}

pub(super) fn find(logs: &[LogText]) -> Option<Diagnosis> {
    let explicit = regex(
        r#"(?:User|Principal): (arn:aws[\w-]*:[^\s]+) is not authorized to perform: ([a-z0-9-]+:[A-Za-z0-9]+) on resource:? "?([^"\s]+)"#,
    );
    let explicit_no_principal =
        regex(r#"not authorized to perform: ([a-z0-9-]+:[A-Za-z0-9]+) on resource:? "?([^"\s]+)"#);
    let denied = regex(
        r"(?i)AccessDenied|Access Denied|Status Code: 403|\(403\)|403 Forbidden|status code: 403|Forbidden \(Service: Amazon S3",
    );
    let s3_context = regex(r"(?i)\bs3[an]?://|amazon ?s3|\.s3[.\-]|\bs3\b|emrfs|object_store");

    let mut found: Option<Denial> = None;
    for log in logs {
        let lines: Vec<&str> = log.text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if !mentions(line, &["not authorized", "ccess", "403", "Forbidden"]) {
                continue;
            }
            if let Some(c) = explicit.captures(line) {
                found = Some(Denial {
                    principal: Some(c[1].to_string()),
                    action: Some(c[2].to_string()),
                    resource: Some(c[3].trim_end_matches(['.', ',']).to_string()),
                    evidence: vec![log.evidence(index + 1, line)],
                });
                continue;
            }
            if let Some(c) = explicit_no_principal.captures(line) {
                found = Some(Denial {
                    principal: None,
                    action: Some(c[1].to_string()),
                    resource: Some(c[2].trim_end_matches(['.', ',']).to_string()),
                    evidence: vec![log.evidence(index + 1, line)],
                });
                continue;
            }
            if !denied.is_match(line) {
                continue;
            }
            // The operation and the URI are often on the lines just before the 403.
            let start = index.saturating_sub(3);
            let window = lines[start..=index].join("\n");
            if !s3_context.is_match(&window) {
                continue;
            }
            let action = action_for_operation(line)
                .or_else(|| action_for_operation(&window))
                .map(str::to_string);
            let resource = resource_arn(line, action.as_deref())
                .or_else(|| resource_arn(&window, action.as_deref()));
            let mut evidence = Vec::new();
            for (offset, context_line) in lines[start..index].iter().enumerate() {
                if resource_arn(context_line, None).is_some()
                    || action_for_operation(context_line).is_some()
                {
                    evidence.push(log.evidence(start + offset + 1, context_line));
                }
            }
            evidence.push(log.evidence(index + 1, line));
            // A later explicit IAM message beats an inferred one; an inferred one with an action
            // beats one without.
            let better = match &found {
                None => true,
                Some(previous) => previous.principal.is_none() && action.is_some(),
            };
            if better {
                found = Some(Denial {
                    action,
                    resource,
                    principal: None,
                    evidence,
                });
            }
        }
    }
    let denial = found?;
    let action = denial.action.as_deref();
    let role = denial.principal.as_deref().and_then(|principal| {
        regex(r"assumed-role/([^/]+)/")
            .captures(principal)
            .map(|c| c[1].to_string())
    });
    let on = denial
        .resource
        .as_deref()
        .map(|r| format!(" on {r}"))
        .unwrap_or_default();
    let mut diagnosis = Diagnosis::new(
        CauseKind::S3AccessDenied,
        match action {
            Some(action) => format!("S3 denied access (403): the role lacks {action}{on}"),
            None => format!("S3 denied access (403){on}"),
        },
    );
    diagnosis.evidence = denial.evidence;
    let who = match &role {
        Some(role) => format!("the role {role} (the cluster's EC2 instance profile)"),
        None => {
            "the cluster's EC2 instance profile role (spec: roles.instance_profile)".to_string()
        }
    };
    let grant = match (action, denial.resource.as_deref()) {
        (Some("s3:ListBucket"), Some(resource)) => format!(
            "grant s3:ListBucket on {resource} (with an s3:prefix condition for the listed prefix) to {who}"
        ),
        (Some(action), Some(resource)) => format!("grant {action} on {resource} to {who}"),
        (Some(action), None) => format!("grant {action} on the object's bucket and prefix to {who}"),
        (None, Some(resource)) => format!(
            "grant s3:GetObject (reads) or s3:PutObject (writes) on {resource}, and s3:ListBucket on its bucket, to {who}"
        ),
        (None, None) => format!(
            "grant the S3 action the operation needs (s3:GetObject to read, s3:PutObject to write, s3:ListBucket to list) to {who}"
        ),
    };
    diagnosis.advice.push(grant);
    diagnosis.advice.push(
        "emrship renders that role's policy from the spec's S3 locations (`emrship plan` shows it; `emrship provision --create-roles` applies it): add the location to the spec rather than editing the role by hand".to_string(),
    );
    diagnosis.advice.push(
        "if the role already allows it, check the bucket policy (an explicit Deny, a VPC endpoint condition) and, for SSE-KMS objects, kms:Decrypt / kms:GenerateDataKey on the key".to_string(),
    );
    Some(diagnosis)
}

#[cfg(test)]
mod tests {
    use super::super::{diagnose, CauseKind, LogText, StepContext};

    #[test]
    fn emrfs_403_on_read_names_get_object_and_the_key() {
        let log = LogText::new(
            "containers/application_1732168000000_0005/container_1732168000000_0005_01_000001/stderr.gz",
            "\
24/11/21 06:05:13 INFO S3NativeFileSystem: Opening 's3://example-ads-logs/product-views/dt=2024-11-20/part-00000.parquet' for reading
24/11/21 06:05:13 WARN TaskSetManager: Lost task 0.0 in stage 0.0 (TID 0) (ip-10-0-1-23.ec2.internal executor 1): java.io.IOException: com.amazon.ws.emr.hadoop.fs.shaded.com.amazonaws.services.s3.model.AmazonS3Exception: Access Denied (Service: Amazon S3; Status Code: 403; Error Code: AccessDenied; Request ID: 8QWJ2Z4R0T9H1K3M; S3 Extended Request ID: b2x9…=; Proxy: null), S3 Extended Request ID: b2x9…=
\tat com.amazon.ws.emr.hadoop.fs.s3n.Jets3tNativeFileSystemStore.retrievePair(Jets3tNativeFileSystemStore.java:396)
",
        );
        let diagnosis = diagnose(&[log], &StepContext::default());
        assert_eq!(diagnosis.kind, CauseKind::S3AccessDenied);
        assert_eq!(
            diagnosis.cause,
            "S3 denied access (403): the role lacks s3:GetObject on arn:aws:s3:::example-ads-logs/product-views/dt=2024-11-20/part-00000.parquet"
        );
        assert_eq!(diagnosis.evidence.len(), 2);
        assert_eq!(diagnosis.evidence[1].line, 2);
    }

    #[test]
    fn iam_message_gives_action_resource_and_role() {
        let log = LogText::new(
            "steps/s-1/stderr.gz",
            "\
emrship-job: error: cannot list s3://example-ads-logs/product-views/dt=2024-11-20/: Generic S3 error: Error performing list request: Client error with status 403 Forbidden: <?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:assumed-role/emrship-match-rate-ec2/i-0a1b2c3d4e5f60718 is not authorized to perform: s3:ListBucket on resource: \"arn:aws:s3:::example-ads-logs\" because no identity-based policy allows the s3:ListBucket action</Message></Error>
",
        );
        let diagnosis = diagnose(&[log], &StepContext::default());
        assert_eq!(diagnosis.kind, CauseKind::S3AccessDenied);
        assert_eq!(
            diagnosis.cause,
            "S3 denied access (403): the role lacks s3:ListBucket on arn:aws:s3:::example-ads-logs"
        );
        assert!(diagnosis.advice[0].contains("emrship-match-rate-ec2"));
        // The job's own error line is the same event, listed as also seen.
        assert!(diagnosis.also.iter().any(|a| a.contains("emrship-job")));
    }

    #[test]
    fn aws_cli_put_object_denied() {
        let log = LogText::new(
            "steps/s-1/stderr.gz",
            "upload failed: ./staged/part-0.bin to s3://example-ads-data/emrship/match-rate/staging/part-0.bin An error occurred (AccessDenied) when calling the PutObject operation: Access Denied\n",
        );
        let diagnosis = diagnose(&[log], &StepContext::default());
        assert_eq!(
            diagnosis.cause,
            "S3 denied access (403): the role lacks s3:PutObject on arn:aws:s3:::example-ads-data/emrship/match-rate/staging/part-0.bin"
        );
    }

    #[test]
    fn a_403_from_another_service_is_not_s3() {
        let log = LogText::new(
            "steps/s-1/stderr.gz",
            "ERROR HttpClient: GET https://ads-api.internal/v1/catalog returned 403 Forbidden\n",
        );
        assert_ne!(
            diagnose(&[log], &StepContext::default()).kind,
            CauseKind::S3AccessDenied
        );
    }
}
