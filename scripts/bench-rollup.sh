#!/usr/bin/env bash
# The rollup benchmark: emrship-job against DuckDB, Polars and PySpark on the seed's workload
# (Parse.ly's page-view rollup, Spark 2:50 vs Dask 0:37 for 100M records on a 4-core laptop).
# Not a test: nothing here runs in scripts/test.sh or CI.
#
# Usage: scripts/bench-rollup.sh [--records N] [--runs N] [--spark-runs N] [--threads N]
#            [--tools LIST] [--data DIR] [--json FILE] [--spark-driver-memory M] [--keep]
#
#   1. builds emrship-job in release (--no-default-features --features job, as shipped);
#   2. installs bench/requirements.txt (DuckDB, Polars, PySpark, all pinned) into its own venv,
#      .venv-bench (override: EMRSHIP_BENCH_VENV), only when that file changed;
#   3. generates the events once, outside the repository, with `emrship-job gen rollup`:
#      --records N (default 100,000,000, or EMRSHIP_BENCH_RECORDS), 2,000,000 per file, 2 files
#      per hour, as the seed's benchmark, Hive-partitioned Parquet in
#      $EMRSHIP_BENCH_DATA/rollup-N (default ~/.cache/emrship-bench/rollup-N; --data DIR to
#      choose); reused when its _SUCCESS is there; --records 2000000 is a quick run;
#   4. runs each tool of --tools (default emrship-job,duckdb,polars,pyspark; `emrship` names
#      emrship-job) as a whole process on the same files with the same thread count (default:
#      every core), round-robin, --runs times each (default 3; PySpark local[N] --spark-runs
#      times, default 1), after reading the inputs once (warm cache):
#        emrship-job rollup --engine local;
#        DuckDB (SQL over read_parquet with hive_partitioning) and Polars (lazy, streaming);
#        PySpark local[N], the seed's Spark job with a native referrer aggregation;
#      each writes the contract's JSON Lines documents;
#   5. checks that every output holds the same multiset of documents (parsed JSON) and the
#      contract's form (key order, sorted referrers and _ids, _SUCCESS), and stops if not;
#   6. prints medians of wall time, CPU time (user+sys) and peak RSS of each whole process,
#      with ratios tool / emrship-job (or / the first tool without it), beside the seed's.
#
#   Output: the table on stdout, progress on stderr, everything as JSON in --json FILE
#   (default bench/results/rollup-N.json). Logs of each tool in the work directory printed at
#   the start.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
records="${EMRSHIP_BENCH_RECORDS:-100000000}"
runs=3
spark_runs=1
threads="$(nproc)"
tools="emrship-job,duckdb,polars,pyspark"
data=""
json=""
spark_memory=6g
keep=()

usage() { sed -n '2,33s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --records) records="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --spark-runs) spark_runs="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --tools) tools="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        --json) json="$2"; shift 2 ;;
        --spark-driver-memory) spark_memory="$2"; shift 2 ;;
        --keep) keep=(--keep); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench: unknown argument: $1" >&2; usage; exit 2 ;;
    esac
done
say() { echo "bench: $*" >&2; }
# shellcheck source=scripts/bench-common.sh
source "$root/scripts/bench-common.sh"
if ! [[ "$records" =~ ^[1-9][0-9]*$ ]]; then
    say "--records must be a positive whole number, not '$records'"
    exit 2
fi
data="${data:-${EMRSHIP_BENCH_DATA:-$HOME/.cache/emrship-bench}/rollup-$records}"
json="${json:-$root/bench/results/rollup-$records.json}"

# 1. emrship-job, as the bundle ships it (it also generates the events).
build_job
if [[ ",$tools," == *",emrship"* ]] && ! "$job" rollup --help >/dev/null 2>&1; then
    say "this emrship-job has no rollup command; leave it out: --tools duckdb,polars,pyspark"
    exit 1
fi

# 2. The peers' venv, apart from the test venv (CI never pays for it).
bench_venv
if [[ ",$tools," == *",pyspark,"* ]] && ! command -v java >/dev/null 2>&1; then
    say "PySpark needs java on PATH (Debian: apt-get install openjdk-17-jre-headless)"
    exit 1
fi

# 3. The events, once.
if [[ ! -f "$data/_SUCCESS" ]]; then
    say "generating $records events into $data"
    "$job" gen rollup --records "$records" --records-per-file 2000000 --files-per-hour 2 \
        --out "$data" >&2
else
    say "reusing the events in $data"
fi

export PYSPARK_PYTHON="$py" PYSPARK_DRIVER_PYTHON="$py"
work="$(mktemp -d "${TMPDIR:-/tmp}/emrship-bench-rollup.XXXXXX")"
say "work directory (logs, outputs): $work"
"$py" "$root/bench/rollup_bench.py" bench --emrship-job "$job" --input "$data" \
    --records "$records" --threads "$threads" --runs "$runs" --spark-runs "$spark_runs" \
    --tools "$tools" --spark-submit "$venv/bin/spark-submit" \
    --spark-driver-memory "$spark_memory" --work "$work" --json "$json" "${keep[@]}"
