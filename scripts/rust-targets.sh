#!/usr/bin/env bash
# Install the Rust standard library for the targets `emrship deploy` builds emrship-job for
# (EMR nodes: x86_64 and Graviton/aarch64 Linux). cargo-zigbuild and Zig come from
# scripts/python-env.sh (tests/python/requirements.txt).
#
# Usage: scripts/rust-targets.sh     (idempotent; quick when both are installed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v rustup >/dev/null 2>&1; then
    echo "rust-targets: rustup not found; install the x86_64-unknown-linux-gnu and aarch64-unknown-linux-gnu standard libraries for your toolchain" >&2
    exit 1
fi
installed="$(rustup target list --installed)"
for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu; do
    if ! grep -qx "$target" <<<"$installed"; then
        rustup target add "$target"
    fi
done
echo "rust-targets: x86_64-unknown-linux-gnu and aarch64-unknown-linux-gnu installed" >&2
