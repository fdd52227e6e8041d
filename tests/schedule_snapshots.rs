//! Snapshots of every request `emrship schedule` makes, for every example spec with a
//! `schedule:`, and of the scheduler Lambda's role policy. A change here is a change to what
//! emrship sends to Lambda, EventBridge, IAM or S3: review each one.

mod common;

use common::{plan_example, EXAMPLES};
use emrship::render::artifacts::Digest256;
use emrship::render::schedule::{schedule_requests, ScheduleInputs};

/// Fixed stand-ins for the two local inputs: the snapshots guard the requests, not the bytes
/// of the template (its own tests) or of the Lambda binary (built per machine).
fn inputs(account: Option<&str>) -> ScheduleInputs {
    ScheduleInputs {
        template: Digest256::of(b"{\"format\": \"emrship-plan-template\"}\n"),
        code: Digest256::of(b"PK lambda zip"),
        architecture: "arm64".into(),
        region: "us-east-1".into(),
        account: account.map(str::to_string),
    }
}

#[test]
fn every_scheduled_example_renders_every_schedule_request() {
    let mut scheduled = 0;
    for (case, spec, overlays) in EXAMPLES {
        let plan = plan_example(spec, overlays);
        let Some(schedule) = &plan.schedule else {
            assert!(schedule_requests(&plan, &inputs(None)).is_none(), "{case}");
            continue;
        };
        scheduled += 1;
        let requests = schedule_requests(&plan, &inputs(Some("123456789012"))).unwrap();
        insta::with_settings!({ snapshot_suffix => *case, omit_expression => true }, {
            insta::assert_json_snapshot!("schedule_requests", requests);
            insta::assert_json_snapshot!(
                "scheduler_role_policy",
                plan.iam.0[&schedule.role].inline_policies["emrship-scheduler"]
            );
        });
        // The requests reuse the plan's IAM documents, not a copy that could drift.
        assert_eq!(
            requests.put_role_policy.policy_document,
            plan.iam.0[&schedule.role].inline_policies["emrship-scheduler"]
        );
        assert_eq!(
            requests.create_role.assume_role_policy_document,
            plan.iam.0[&schedule.role].trust_policy
        );
    }
    assert!(
        scheduled >= 2,
        "the examples should include scheduled specs"
    );
}

#[test]
fn without_an_account_the_arns_have_a_wildcard() {
    let plan = plan_example("job-specs/match-rate.yaml", &[]);
    let requests = schedule_requests(&plan, &inputs(None)).unwrap();
    assert_eq!(
        requests.add_permission.source_arn,
        "arn:aws:events:us-east-1:*:rule/emrship-match-rate"
    );
    assert_eq!(requests.add_permission.source_account, None);
    assert_eq!(
        requests.put_targets.targets[0].arn,
        "arn:aws:lambda:us-east-1:*:function:emrship-match-rate-scheduler"
    );
}
