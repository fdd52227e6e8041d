#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test.
#
#   scripts/test.sh            # what CI runs (.ci/run)
#   scripts/test.sh --test cli # extra arguments go to `cargo test`
#
# Needs: the machine's Rust toolchain and python3 (both on a fresh machine). Installs into the
# repository only: the Python test environment in .venv-test (botocore's EMR model for
# validating plans, moto for the AWS emulator), and a test PostgreSQL cluster in
# target/emrship-pg (scripts/postgres.sh; as root it apt-get installs Debian's postgresql
# package when no server binaries are found). To test against your own server instead, set
# EMRSHIP_TEST_PG_URL (a user that may create schemas) and PGPASSWORD, and for the TLS tests
# EMRSHIP_TEST_PG_CA (the PEM CA file that verifies the server's certificate for its host).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

EMRSHIP_TEST_PYTHON="$(bash scripts/python-env.sh --print-python)"
export EMRSHIP_TEST_PYTHON
# A JDK: spark-submit needs java; tests/app_run_local.rs compiles the JVM example with javac.
bash scripts/jdk.sh
# kinesalite (npm): tests/stream.rs reads a split shard to its end there (moto never ends one).
bash scripts/kinesalite.sh >/dev/null
# The Rust standard library for both Linux targets: tests/lambda_package.rs cross-builds
# emrship-lambda for x86_64 and aarch64 with cargo-zigbuild.
bash scripts/rust-targets.sh

# The PostgreSQL sink tests need a real server: the given one if it answers, else ours, whose
# user has the fixed test password (see scripts/postgres.sh).
pg_url_given="${EMRSHIP_TEST_PG_URL:-}"
# Two lines: the URL, then the CA that signed the server's TLS certificate (ours, or the given
# EMRSHIP_TEST_PG_CA for a given server); the sink's TLS tests verify the server with it.
pg_info="$(bash scripts/postgres.sh --print-url --print-ca)"
EMRSHIP_TEST_PG_URL="$(sed -n 1p <<<"$pg_info")"
EMRSHIP_TEST_PG_CA="$(sed -n 2p <<<"$pg_info")"
export EMRSHIP_TEST_PG_URL EMRSHIP_TEST_PG_CA
if [[ "$EMRSHIP_TEST_PG_URL" != "$pg_url_given" ]]; then
    export PGPASSWORD=emrship-test
fi

# Snapshots are checked, never written (`cargo insta test --check`): INSTA_UPDATE=no fails a
# test whose snapshot differs and writes no .snap.new. insta appends the path of every snapshot
# an assertion reads to INSTA_SNAPSHOT_REFERENCES_FILE (what cargo-insta's --unreferenced uses).
references="$(mktemp)"
trap 'rm -f "$references"' EXIT
# CI reads the closing "test result" lines; keep cargo's own output.
INSTA_UPDATE=no INSTA_SNAPSHOT_REFERENCES_FILE="$references" \
    cargo test --locked --all-targets "$@"

# `--unreferenced=reject`: after a whole run, a snapshot no assertion read belongs to a test
# that is gone or renamed. (With extra arguments only some tests ran, so this is skipped.)
if [[ $# -eq 0 ]]; then
    unreferenced="$(comm -23 \
        <(for snap in tests/snapshots/*.snap; do realpath "$snap"; done | sort -u) \
        <(xargs -r -d '\n' realpath -m <"$references" | sort -u))"
    if [[ -n "$unreferenced" ]]; then
        echo "error: these snapshots are not asserted by any test:" >&2
        sed 's/^/  /' <<<"$unreferenced" >&2
        echo "help: delete each with the assertion that made it (or restore the test)" >&2
        exit 1
    fi
fi
