#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test.
#
#   scripts/test.sh            # what CI runs (.ci/run)
#   scripts/test.sh --test cli # extra arguments go to `cargo test`
#
# Needs: the machine's Rust toolchain and python3 (both on a fresh machine). Installs into the
# repository only: the Python test environment in .venv-test (botocore's EMR model for
# validating plans, moto for the AWS emulator).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

EMRSHIP_TEST_PYTHON="$(bash scripts/python-env.sh --print-python)"
export EMRSHIP_TEST_PYTHON

# CI reads the closing "test result" lines; keep cargo's own output.
cargo test --locked --all-targets "$@"
