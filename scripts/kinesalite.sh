#!/usr/bin/env bash
# Installs kinesalite (a Kinesis emulator on Node) into target/kinesalite from the pinned
# tests/node/package-lock.json and prints the path of its launcher. tests/stream.rs uses it
# where moto falls short: moto never ends a shard after a split (GetRecords always returns a
# next iterator), while kinesalite closes the parent and returns none at its end.
#
#   scripts/kinesalite.sh   # prints e.g. /…/target/kinesalite/node_modules/.bin/kinesalite
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=target/kinesalite
bin="$dir/node_modules/.bin/kinesalite"
if ! command -v npm >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq >&2 && apt-get install -y -qq nodejs npm >&2
    else
        echo "kinesalite.sh: npm is missing; install Node.js and npm" >&2
        exit 1
    fi
fi
if [[ ! -x "$bin" ]] || ! cmp -s tests/node/package-lock.json "$dir/package-lock.json"; then
    mkdir -p "$dir"
    cp tests/node/package.json tests/node/package-lock.json "$dir/"
    # leveldown ships prebuilt binaries for Linux in its package; nothing is compiled.
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
fi
realpath "$bin"
