#!/usr/bin/env bash
# The stream benchmark: emrship-job's stream aggregation against PySpark Structured Streaming
# (decode-and-aggregate records per second per core), and the put-to-visible latency of one
# worker through moto. Not a test: nothing here runs in scripts/test.sh or CI.
#
# Usage: scripts/bench-stream.sh [--records N] [--runs N] [--spark-runs N] [--parts LIST]
#            [--seconds S] [--rate R] [--variant generated|python-high-cardinality] [--json FILE]
#
#   1. builds emrship-job in release (--no-default-features --features job, as shipped);
#   2. uses the project's Python test environment (pyspark 3.5.9 as EMR 7.x ships Spark 3.5,
#      moto, boto3: scripts/python-env.sh) for the peer and the emulator;
#   3. generates --records (default 2,000,000) page-view records once under
#      ~/.cache/emrship-bench/stream-VARIANT-N: `generated` with `emrship-job gen stream --copy`,
#      `python-high-cardinality` with another generator (bench/stream_bench.py: Python's json,
#      UUID sessions, long urls, offsets, out-of-order ts);
#   4. runs bench/stream_bench.py: throughput (both tools, outputs checked equal) and latency
#      (--seconds of puts at --rate records/s; default 150 s at 500/s);
#   5. prints JSON and writes it to --json (default bench/results/stream-N.json).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
records=2000000
runs=3
spark_runs=1
parts="throughput,latency"
variant=generated
seconds=150
rate=500
json=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --records) records="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --spark-runs) spark_runs="$2"; shift 2 ;;
        --parts) parts="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --json) json="$2"; shift 2 ;;
        --variant) variant="$2"; shift 2 ;;
        *) echo "bench-stream: unknown argument $1" >&2; exit 2 ;;
    esac
done
json="${json:-$root/bench/results/stream-$variant-$records.json}"
say() { echo "bench-stream: $*" >&2; }
# shellcheck source=scripts/bench-common.sh
source "$root/scripts/bench-common.sh"
build_job
python="$(bash "$root/scripts/python-env.sh" --print-python)"
work="${EMRSHIP_BENCH_DATA:-$HOME/.cache/emrship-bench}/stream-$variant-$records"
mkdir -p "$work" "$(dirname "$json")"
say "work directory $work"
PYTHONPATH="$root/bench" "$python" "$root/bench/stream_bench.py" bench \
    --job "$job" --records "$records" --runs "$runs" \
    --spark-runs "$spark_runs" --spark-python "$python" --moto-python "$python" \
    --work "$work" --parts "$parts" --variant "$variant" --seconds "$seconds" --rate "$rate" --json "$json"
