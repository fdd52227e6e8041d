#!/usr/bin/env python3
"""Validate an emrship plan against botocore's Amazon EMR service model.

Usage:
    validate_emr.py PLAN.json          # read the plan from a file
    validate_emr.py --stdin            # read the plan from standard input
    validate_emr.py -                  # same as --stdin
    validate_emr.py [--no-extra-checks] (PLAN.json | --stdin)

PLAN.json is a JSON object with (at least) these keys; any other top-level
keys (e.g. "security_groups") are ignored:

    "run_job_flow":       kwargs of boto3's emr.run_job_flow(**x), i.e. the
                          RunJobFlow request in AWS API member names.
    "add_job_flow_steps": {"Steps": [...]}. The JobFlowId is only known at
                          submit time, so a dummy one is filled in when absent.

Checks, in order, for each request:
  1. botocore.validate.ParamValidator against the operation's input shape
     (required members, types, unknown members, min length/value) -- the same
     client-side validation boto3 runs before sending a request.
  2. Extra service-model constraints that botocore does not check client-side
     but the EMR service does: enum values, max length/size/value, and a JSON
     boolean where a number is expected (Python's bool is an int, so botocore
     lets it through). Disable with --no-extra-checks.
  3. Serialization with botocore's serializer for the service's protocol
     ("json" for EMR), proving the request can actually be put on the wire.

Exit status: 0 valid (prints "ok: RunJobFlow, AddJobFlowSteps" on stdout),
1 invalid plan (every problem is reported on stderr), 2 usage error.
"""

import argparse
import json
import sys

import botocore.serialize
import botocore.session
import botocore.validate

DUMMY_JOB_FLOW_ID = "j-0000000000000"

# (plan key, EMR operation name)
OPERATIONS = (
    ("run_job_flow", "RunJobFlow"),
    ("add_job_flow_steps", "AddJobFlowSteps"),
)

PROG = "validate_emr"


class PlanError(Exception):
    """The plan cannot be read or has the wrong overall structure."""


def _reject_duplicate_keys(pairs):
    # json.load silently keeps the last of duplicate keys; a renderer emitting
    # duplicates has a bug worth reporting.
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise PlanError(f"duplicate key {key!r} in a JSON object")
        obj[key] = value
    return obj


def load_plan(text, source):
    try:
        plan = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{source}: not valid JSON: {exc}") from None
    except PlanError as exc:
        raise PlanError(f"{source}: {exc}") from None
    if not isinstance(plan, dict):
        raise PlanError(
            f"{source}: the plan must be a JSON object, got {type(plan).__name__}"
        )
    return plan


def extra_checks(value, shape, path, errors):
    """Recursively check constraints of the service model that botocore's
    ParamValidator skips (it validates only 'required', 'min', types and
    unknown members). Regex 'pattern's are not checked: the model's patterns
    are Java-style and EMR's are permissive character-class ranges anyway.

    Only walks values whose type already matches the shape; type, required and
    unknown-member errors are botocore's to report.
    """
    t = shape.type_name
    meta = shape.metadata
    where = path or "input"
    if t == "structure" and isinstance(value, dict):
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is not None:
                sub = f"{path}.{name}" if path else name
                extra_checks(member_value, member, sub, errors)
    elif t == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(
                f"Invalid length for parameter {where}, length: {len(value)}, "
                f"valid max length: {meta['max']}"
            )
        for i, item in enumerate(value):
            extra_checks(item, shape.member, f"{where}[{i}]", errors)
    elif t == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(
                f"Invalid length for parameter {where}, length: {len(value)}, "
                f"valid max length: {meta['max']}"
            )
        for k, v in value.items():
            extra_checks(k, shape.key, f"{where} (key {k!r})", errors)
            extra_checks(v, shape.value, f"{where}.{k}", errors)
    elif t == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            errors.append(
                f"Invalid value for parameter {where}, value: {value!r}, "
                f"valid values: {', '.join(shape.enum)}"
            )
        if "max" in meta and len(value) > meta["max"]:
            errors.append(
                f"Invalid length for parameter {where}, length: {len(value)}, "
                f"valid max length: {meta['max']}"
            )
    elif t in ("integer", "long", "float", "double"):
        if isinstance(value, bool):
            errors.append(
                f"Invalid type for parameter {where}, value: {json.dumps(value)}, "
                f"type: boolean, valid types: number"
            )
        elif isinstance(value, (int, float)) and "max" in meta and value > meta["max"]:
            errors.append(
                f"Invalid value for parameter {where}, value: {value}, "
                f"valid max value: {meta['max']}"
            )


def check_operation(params, operation_model, serializer, run_extra):
    """Return a list of human-readable error lines (empty when valid)."""
    shape = operation_model.input_shape
    # botocore's ParamValidator reports unknown members itself, at every depth
    # ('Unknown parameter in Instances: "Foo", must be one of: ...'), so no
    # separate unknown-key walk is needed here.
    report = botocore.validate.ParamValidator().validate(params, shape)
    errors = report.generate_report().splitlines() if report.has_errors() else []
    if run_extra:
        extra_checks(params, shape, "", errors)
    if errors:
        return errors
    try:
        request = serializer.serialize_to_request(params, operation_model)
        body = request["body"]
        json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except Exception as exc:  # any failure here means "cannot be sent"
        return [f"cannot be serialized by botocore: {type(exc).__name__}: {exc}"]
    return []


def validate_plan(plan, run_extra=True):
    """Return {operation name: [error lines]} for every invalid request."""
    model = botocore.session.get_session().get_service_model("emr")
    serializer = botocore.serialize.create_serializer(
        model.metadata["protocol"], include_validation=False
    )
    failures = {}
    for key, op_name in OPERATIONS:
        if key not in plan:
            failures[op_name] = [f'plan has no "{key}" key']
            continue
        params = plan[key]
        if not isinstance(params, dict):
            failures[op_name] = [
                f'"{key}" must be a JSON object, got {type(params).__name__}'
            ]
            continue
        if op_name == "AddJobFlowSteps" and "JobFlowId" not in params:
            params = dict(params, JobFlowId=DUMMY_JOB_FLOW_ID)
        errs = check_operation(
            params, model.operation_model(op_name), serializer, run_extra
        )
        if errs:
            failures[op_name] = errs
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="validate_emr.py",
        description="Validate an emrship plan (run_job_flow, add_job_flow_steps) "
        "against botocore's EMR service model.",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("plan", nargs="?", metavar="PLAN.json", help="plan file ('-' = stdin)")
    src.add_argument("--stdin", action="store_true", help="read the plan from stdin")
    parser.add_argument(
        "--no-extra-checks",
        action="store_true",
        help="only botocore's ParamValidator + serializer (skip enum/max checks)",
    )
    args = parser.parse_args(argv)

    try:
        if args.stdin or args.plan == "-":
            source = "<stdin>"
            text = sys.stdin.read()
        else:
            source = args.plan
            try:
                with open(args.plan, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                raise PlanError(f"cannot read {args.plan}: {exc.strerror}") from None
        plan = load_plan(text, source)
    except PlanError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1

    failures = validate_plan(plan, run_extra=not args.no_extra_checks)
    if failures:
        for op_name, errs in failures.items():
            n = len(errs)
            print(
                f"{PROG}: {source}: {op_name} request is invalid "
                f"({n} error{'s' if n != 1 else ''}):",
                file=sys.stderr,
            )
            for line in errs:
                print(f"  {line}", file=sys.stderr)
        return 1

    print("ok: " + ", ".join(op for _, op in OPERATIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
