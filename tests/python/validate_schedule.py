#!/usr/bin/env python3
"""Validate the requests `emrship schedule --dry-run --format json` renders against
botocore's service models (S3, IAM, Lambda, EventBridge).

Usage:
    validate_schedule.py --stdin < requests.json

Each rendered request is checked like validate_emr.py checks RunJobFlow: botocore's
ParamValidator (required and unknown members, types, min), the model constraints botocore
skips client-side (enums, max), and serialization for the service's protocol. Two members are
rendered by digest instead of bytes on purpose and are swapped for placeholder bytes here:
the plan template's `Body` (PutObject) and the function's `Code` (CreateFunction). IAM takes
policy documents as JSON strings; the renderer shows them as objects.

Exit status: 0 valid (prints "ok: <operations>"), 1 invalid (problems on stderr).
"""

import json
import os
import sys

import botocore.serialize
import botocore.session
import botocore.validate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from validate_emr import extra_checks  # noqa: E402

# (rendered key, service, operation)
OPERATIONS = (
    ("put_plan_template", "s3", "PutObject"),
    ("create_role", "iam", "CreateRole"),
    ("put_role_policy", "iam", "PutRolePolicy"),
    ("create_function", "lambda", "CreateFunction"),
    ("put_rule", "events", "PutRule"),
    ("put_targets", "events", "PutTargets"),
    ("add_permission", "lambda", "AddPermission"),
)


def as_sent(key, params):
    params = dict(params)
    if key == "put_plan_template":
        params["Body"] = b"{}"
    elif key == "create_role":
        params["AssumeRolePolicyDocument"] = json.dumps(params["AssumeRolePolicyDocument"])
    elif key == "put_role_policy":
        params["PolicyDocument"] = json.dumps(params["PolicyDocument"])
    elif key == "create_function":
        params["Code"] = {"ZipFile": b"PK"}
    return params


def check(service, operation, params):
    session = botocore.session.get_session()
    model = session.get_service_model(service)
    op = model.operation_model(operation)
    report = botocore.validate.ParamValidator().validate(params, op.input_shape)
    errors = report.generate_report().splitlines() if report.has_errors() else []
    extra_checks(params, op.input_shape, "", errors)
    if errors:
        return errors
    try:
        serializer = botocore.serialize.create_serializer(
            model.metadata["protocol"], include_validation=False
        )
        serializer.serialize_to_request(params, op)
    except Exception as exc:  # any failure here means "cannot be sent"
        return [f"cannot be serialized by botocore: {type(exc).__name__}: {exc}"]
    return []


def main():
    if sys.argv[1:] != ["--stdin"]:
        print(__doc__, file=sys.stderr)
        return 2
    requests = json.loads(sys.stdin.read())
    failed = False
    for key, service, operation in OPERATIONS:
        if key not in requests:
            print(f"validate_schedule: no {key!r} in the requests", file=sys.stderr)
            failed = True
            continue
        errors = check(service, operation, as_sent(key, requests[key]))
        if errors:
            failed = True
            print(f"validate_schedule: {operation} is invalid:", file=sys.stderr)
            for line in errors:
                print(f"  {line}", file=sys.stderr)
    if failed:
        return 1
    print("ok: " + ", ".join(op for _, _, op in OPERATIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
