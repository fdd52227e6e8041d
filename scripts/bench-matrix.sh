#!/usr/bin/env bash
# The benchmark matrix (issue 12): both jobs of emrship-job against DuckDB and Polars on data of
# many shapes written by pyarrow, DuckDB and Polars. Not a test: nothing here runs in
# scripts/test.sh or CI.
#
# Usage: scripts/bench-matrix.sh [--quick] [--events N] [--runs N] [--threads N] [--rows LIST]
#            [--data DIR] [--json FILE] [--markdown FILE] [--keep]
#
#   1. builds emrship-job in release (--no-default-features --features job, as shipped);
#   2. installs bench/requirements.txt into .venv-bench (override: EMRSHIP_BENCH_VENV), only
#      when that file changed;
#   3. per row (bench/matrix.py lists them: writer, files, id length, key skew, group count,
#      format), generates the row's data once into $EMRSHIP_BENCH_DATA/matrix (default
#      ~/.cache/emrship-bench/matrix; --data DIR to choose): --events N per row (default
#      10,000,000; --quick: 2,000,000 and one run);
#   4. runs emrship-job, DuckDB and Polars as whole processes on the same files with the same
#      thread count (default 2), round-robin, --runs times (default 3), warm cache;
#   5. checks the outputs equal (match_rate_bench.py's and rollup_bench.py's checks);
#   6. prints a markdown table of medians (wall, CPU, peak RSS), the ratios fastest peer / ours
#      and lowest peer peak / ours, and which targets each row meets (match-rate ≥ 1.5×,
#      rollup ≥ 3×, lower peak RSS than every peer).
#
#   --rows filters rows: JOB (match-rate, rollup), NAME (plain, csv, ...) or JOB:NAME, comma
#   separated. Output: the table on stdout, progress on stderr, everything as JSON in --json
#   FILE (default bench/results/matrix-N.json).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
events=10000000
runs=3
threads=2
rows=""
data="${EMRSHIP_BENCH_DATA:-$HOME/.cache/emrship-bench}/matrix"
json=""
markdown=()
keep=()

usage() { sed -n '2,27s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) events=2000000; runs=1; shift ;;
        --events) events="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --rows) rows="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        --json) json="$2"; shift 2 ;;
        --markdown) markdown=(--markdown "$2"); shift 2 ;;
        --keep) keep=(--keep); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench: unknown argument: $1" >&2; usage; exit 2 ;;
    esac
done
say() { echo "bench: $*" >&2; }
# shellcheck source=scripts/bench-common.sh
source "$root/scripts/bench-common.sh"
json="${json:-$root/bench/results/matrix-$events.json}"

build_job
bench_venv

"$py" "$root/bench/matrix.py" --emrship-job "$job" \
    --events "$events" --runs "$runs" --threads "$threads" --rows "$rows" --data "$data" \
    --json "$json" "${markdown[@]}" "${keep[@]}"
