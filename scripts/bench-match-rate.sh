#!/usr/bin/env bash
# The match-rate benchmark: emrship-job against DuckDB, Polars and PySpark, and emrship-job's
# PostgreSQL sink against `psql \copy`. Not a test: nothing here runs in scripts/test.sh or CI.
#
# Usage: scripts/bench-match-rate.sh [--scale F] [--runs N] [--spark-runs N] [--threads N]
#            [--engines LIST] [--data DIR] [--json FILE] [--no-postgres] [--keep]
#
#   1. builds emrship-job in release (--no-default-features --features job, as shipped);
#   2. installs bench/requirements.txt (DuckDB, Polars, PySpark, all pinned) into its own venv,
#      .venv-bench (override: EMRSHIP_BENCH_VENV), only when that file changed;
#   3. generates the data once, outside the repository: at --scale 1 (the default) the seed's
#      40M view events, 8M distinct viewed pairs, 2,000 advertisers, a 20M-row catalog, 80%
#      of viewed pairs matched, as Parquet, in $EMRSHIP_BENCH_DATA/scale-F (default
#      ~/.cache/emrship-bench/scale-F; --data DIR to choose); --scale 0.05 is a quick run;
#   4. runs each engine as a whole process on the same files with the same thread count
#      (default: every core), round-robin, --runs times each (default 3; PySpark local[N]
#      --spark-runs times, default 1), after reading the inputs once (warm cache):
#        emrship-job match-rate --engine local, Parquet sink;
#        DuckDB and Polars (streaming), the same job, the same two Parquet tables;
#        PySpark local[N], the same job in the DataFrame API;
#   5. checks that every output has the same rows and numbers as emrship-job's (DuckDB reads
#      them all) and stops if not;
#   6. prints medians of wall time, CPU time (user+sys) and peak RSS of each whole process,
#      with ratios peer / emrship-job;
#   7. PostgreSQL (unless --no-postgres): `psql \copy` of the day's product rows into a bare
#      table and into one with the primary key, against emrship-job's PostgreSQL sink landing
#      the same day. The server: EMRSHIP_TEST_PG_URL, else the one scripts/postgres.sh starts
#      (fsync off). Its password from PGPASSWORD (default: that script's test password).
#
#   Output: the tables on stdout, progress on stderr, everything as JSON in --json FILE
#   (default bench/results/match-rate-scale-F.json). Logs of each engine in the work
#   directory printed at the start.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scale=1
runs=3
spark_runs=1
threads="$(nproc)"
engines="emrship-job,duckdb,polars,pyspark"
data=""
json=""
postgres=1
keep=()

usage() { sed -n '2,34s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) scale="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --spark-runs) spark_runs="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --engines) engines="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        --json) json="$2"; shift 2 ;;
        --no-postgres) postgres=0; shift ;;
        --keep) keep=(--keep); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench: unknown argument: $1" >&2; usage; exit 2 ;;
    esac
done
say() { echo "bench: $*" >&2; }
# shellcheck source=scripts/bench-common.sh
source "$root/scripts/bench-common.sh"

# Sizes at this scale: the seed's, scaled; at least one pair per advertiser.
read -r events pairs advertisers catalog_size < <(python3 - "$scale" <<'EOF'
import sys
s = float(sys.argv[1])
if s <= 0:
    raise SystemExit("bench: --scale must be positive")
pairs = max(1, round(8_000_000 * s))
print(round(40_000_000 * s), pairs, min(2000, pairs), round(20_000_000 * s))
EOF
)
day=2026-11-20
data="${data:-${EMRSHIP_BENCH_DATA:-$HOME/.cache/emrship-bench}/scale-$scale}"
json="${json:-$root/bench/results/match-rate-scale-$scale.json}"

# 1. emrship-job, as the bundle ships it.
build_job

# 2. The peers' venv, apart from the test venv (CI never pays for it).
bench_venv
if [[ ",$engines," == *",pyspark,"* ]] && ! command -v java >/dev/null 2>&1; then
    say "PySpark needs java on PATH (Debian: apt-get install openjdk-17-jre-headless)"
    exit 1
fi

# 3. The data, once.
if [[ ! -f "$data/_SUCCESS" ]]; then
    say "generating $events events, $pairs pairs, $advertisers advertisers," \
        "$catalog_size catalog rows into $data"
    mkdir -p "$data"
    "$job" gen match-rate --events "$events" --pairs "$pairs" --advertisers "$advertisers" \
        --catalog-size "$catalog_size" --match-fraction 0.8 --date "$day" --out "$data" >&2
else
    say "reusing the data in $data"
fi

# 7's server.
pg=()
if [[ $postgres == 1 ]]; then
    export PGPASSWORD="${PGPASSWORD:-emrship-test}"
    pg=(--pg-url "$("$root/scripts/postgres.sh" --print-url)")
fi

export PYSPARK_PYTHON="$py" PYSPARK_DRIVER_PYTHON="$py"
work="$(mktemp -d "${TMPDIR:-/tmp}/emrship-bench.XXXXXX")"
say "work directory (logs, outputs): $work"
"$py" "$root/bench/match_rate_bench.py" bench --emrship-job "$job" \
    --views "$data/views" --catalog "$data/catalog" --date "$day" --threads "$threads" \
    --runs "$runs" --spark-runs "$spark_runs" --engines "$engines" \
    --spark-submit "$venv/bin/spark-submit" --scale "$scale" --work "$work" --json "$json" \
    "${pg[@]}" "${keep[@]}"
