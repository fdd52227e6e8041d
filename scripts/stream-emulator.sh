#!/usr/bin/env bash
# Starts an AWS emulator for the stream job on this machine (moto's server mode from the
# project's Python test environment: Kinesis, DynamoDB and S3) on a free loopback port, and
# prints the variables that point the SDKs at it, so that
#
#   eval "$(scripts/stream-emulator.sh)"
#   cargo run --bin emrship -- run job-specs/streaming-events.yaml --local
#
# runs the streaming spec end to end with no AWS account. `scripts/stream-emulator.sh --stop`
# stops it. Its state lives in memory only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pidfile=target/stream-emulator.pid
if [[ "${1:-}" == "--stop" ]]; then
    [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    exit 0
fi
python="$(bash scripts/python-env.sh --print-python)"
port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p target
nohup "$python" -m moto.server -H 127.0.0.1 -p "$port" >target/stream-emulator.log 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    sleep 0.1
done
cat <<VARS
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_EC2_METADATA_DISABLED=true
VARS
echo "stream-emulator: moto on 127.0.0.1:$port (pid $(cat "$pidfile")); stop it with scripts/stream-emulator.sh --stop" >&2
