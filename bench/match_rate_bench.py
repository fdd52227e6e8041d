#!/usr/bin/env python3
"""The match-rate benchmark: emrship-job against DuckDB, Polars and PySpark on the same files.

Run through scripts/bench-match-rate.sh, which builds emrship-job, makes the venv of
bench/requirements.txt and generates the data. This file has two roles:

- `bench`: the harness. Runs every engine as a whole process, round-robin, N times, measures
  wall time, CPU time (user+sys) and peak RSS of the process and everything it waited for
  (os.wait4), checks that all outputs agree (DuckDB reads every output), then the PostgreSQL
  part, and prints a table of medians and ratios (peer / emrship-job); writes JSON too.
- `duckdb`, `polars`, `pyspark`: the peers, each doing exactly the job emrship-job does:
  views of the day (event_time null or inside the UTC day, ids neither null nor empty),
  counted per (advertiser_id, product_id); matched = the pair is in the catalog; the
  per-advertiser aggregate; both tables written as Parquet (zstd, like emrship-job's sink) to
  OUT/product_matches/day=D/ and OUT/advertiser_match_rates/day=D/.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile

import benchlib

PRODUCT_MATCHES = "product_matches"
ADVERTISER_RATES = "advertiser_match_rates"


# Input formats the peers read (emrship-job tells them by extension): the file pattern under a
# directory, and, for text, the columns' types (timestamps as ISO 8601 strings with a Z).
FORMATS = {"parquet": "*.parquet", "csv": "*.csv", "jsonl": "*.jsonl"}


def duck_scan(directory, fmt, columns):
    """A DuckDB table function reading every `fmt` file of `directory`; `columns` maps each
    column of a text format to its SQL type."""
    pattern = os.path.join(directory, FORMATS[fmt])
    types = "{" + ", ".join(f"'{c}': '{t}'" for c, t in columns.items()) + "}"
    if fmt == "parquet":
        return f"read_parquet('{pattern}')"
    if fmt == "csv":
        return f"read_csv('{pattern}', header = true, columns = {types})"
    return f"read_json('{pattern}', format = 'newline_delimited', columns = {types})"


def polars_scan(directory, fmt, columns):
    """A Polars LazyFrame of every `fmt` file of `directory`; text columns typed as `columns`
    says (a timestamp column parsed from ISO 8601 with a Z, as UTC)."""
    import polars as pl

    pattern = os.path.join(directory, FORMATS[fmt])
    if fmt == "parquet":
        return pl.scan_parquet(pattern)
    schema = {c: pl.String for c in columns}
    frame = (pl.scan_csv(pattern, schema=schema) if fmt == "csv"
             else pl.scan_ndjson(pattern, schema=schema))
    times = [c for c, t in columns.items() if t == "TIMESTAMPTZ"]
    return frame.with_columns(
        pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC") for c in times
    )


VIEW_COLUMNS = {"advertiser_id": "VARCHAR", "product_id": "VARCHAR", "event_time": "TIMESTAMPTZ"}
CATALOG_COLUMNS = {"advertiser_id": "VARCHAR", "product_id": "VARCHAR"}


def day_dirs(out, day):
    pm = os.path.join(out, PRODUCT_MATCHES, f"day={day}")
    ar = os.path.join(out, ADVERTISER_RATES, f"day={day}")
    return pm, ar


# --------------------------------------------------------------------------------------------
# Peers


def peer_duckdb(args):
    import duckdb

    pm_dir, ar_dir = day_dirs(args.out, args.date)
    os.makedirs(pm_dir, exist_ok=True)
    os.makedirs(ar_dir, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    views = duck_scan(args.views, args.format, VIEW_COLUMNS)
    catalog = duck_scan(args.catalog, args.format, CATALOG_COLUMNS)
    start = f"TIMESTAMPTZ '{args.date} 00:00:00+00'"
    con.execute(
        f"""
        CREATE TEMP TABLE pm AS
        WITH v AS (
            SELECT advertiser_id, product_id, count(*) AS view_count
            FROM {views}
            WHERE advertiser_id IS NOT NULL AND advertiser_id <> ''
              AND product_id IS NOT NULL AND product_id <> ''
              AND (event_time IS NULL
                   OR (event_time >= {start} AND event_time < {start} + INTERVAL 1 DAY))
            GROUP BY advertiser_id, product_id
        )
        SELECT DATE '{args.date}' AS day, advertiser_id, product_id, view_count,
               EXISTS (SELECT 1 FROM {catalog} c
                       WHERE c.advertiser_id = v.advertiser_id
                         AND c.product_id = v.product_id) AS matched
        FROM v
        """
    )
    con.execute(
        f"COPY pm TO '{pm_dir}/part-0.parquet' (FORMAT parquet, COMPRESSION zstd)"
    )
    con.execute(
        f"""
        COPY (
            SELECT day, advertiser_id,
                   sum(view_count)::BIGINT AS total_views,
                   sum(CASE WHEN matched THEN view_count ELSE 0 END)::BIGINT AS matched_views,
                   count(*)::BIGINT AS total_products,
                   count(*) FILTER (WHERE matched)::BIGINT AS matched_products,
                   sum(CASE WHEN matched THEN view_count ELSE 0 END)::DOUBLE
                       / sum(view_count)::DOUBLE AS match_rate
            FROM pm GROUP BY day, advertiser_id ORDER BY advertiser_id
        ) TO '{ar_dir}/part-0.parquet' (FORMAT parquet, COMPRESSION zstd)
        """
    )


def peer_polars(args):
    # Polars reads POLARS_MAX_THREADS at import; the harness sets it.
    import polars as pl

    pm_dir, ar_dir = day_dirs(args.out, args.date)
    os.makedirs(pm_dir, exist_ok=True)
    os.makedirs(ar_dir, exist_ok=True)
    day = dt.date.fromisoformat(args.date)
    views = polars_scan(args.views, args.format, VIEW_COLUMNS)
    time_type = views.collect_schema().get("event_time")
    in_day = pl.lit(True)
    if time_type is not None:
        tz = dt.timezone.utc if getattr(time_type, "time_zone", None) else None
        start = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
        end = start + dt.timedelta(days=1)
        t = pl.col("event_time")
        in_day = t.is_null() | ((t >= start) & (t < end))
    counts = (
        views.filter(
            pl.col("advertiser_id").is_not_null()
            & (pl.col("advertiser_id") != "")
            & pl.col("product_id").is_not_null()
            & (pl.col("product_id") != "")
            & in_day
        )
        .group_by("advertiser_id", "product_id")
        .agg(pl.len().cast(pl.Int64).alias("view_count"))
    )
    # The generated catalog has one row per key; a left join against it is the mark join.
    catalog = (
        polars_scan(args.catalog, args.format, CATALOG_COLUMNS)
        .select("advertiser_id", "product_id")
        .with_columns(pl.lit(True).alias("matched"))
    )
    pm = (
        counts.join(catalog, on=["advertiser_id", "product_id"], how="left")
        .select(
            pl.lit(day).alias("day"),
            "advertiser_id",
            "product_id",
            "view_count",
            pl.col("matched").fill_null(False),
        )
        .collect(engine="streaming")
    )
    pm.write_parquet(os.path.join(pm_dir, "part-0.parquet"), compression="zstd")
    matched_views = pl.when(pl.col("matched")).then(pl.col("view_count")).otherwise(0)
    rates = (
        pm.lazy()
        .group_by("day", "advertiser_id")
        .agg(
            pl.col("view_count").sum().cast(pl.Int64).alias("total_views"),
            matched_views.sum().cast(pl.Int64).alias("matched_views"),
            pl.len().cast(pl.Int64).alias("total_products"),
            pl.col("matched").sum().cast(pl.Int64).alias("matched_products"),
        )
        .with_columns(
            (pl.col("matched_views") / pl.col("total_views")).alias("match_rate")
        )
        .sort("advertiser_id")
        .collect(engine="streaming")
    )
    rates.write_parquet(os.path.join(ar_dir, "part-0.parquet"), compression="zstd")


def peer_pyspark(args):
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.appName("match-rate-bench").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    pm_dir, ar_dir = day_dirs(args.out, args.date)
    views = spark.read.parquet(args.views)
    start = F.to_timestamp(F.lit(f"{args.date} 00:00:00"))
    end = F.to_timestamp(
        F.lit(f"{dt.date.fromisoformat(args.date) + dt.timedelta(days=1)} 00:00:00")
    )
    in_day = F.lit(True)
    if "event_time" in views.columns:
        t = F.col("event_time")
        in_day = t.isNull() | ((t >= start) & (t < end))
    counts = (
        views.where(
            F.col("advertiser_id").isNotNull()
            & (F.col("advertiser_id") != "")
            & F.col("product_id").isNotNull()
            & (F.col("product_id") != "")
            & in_day
        )
        .groupBy("advertiser_id", "product_id")
        .agg(F.count(F.lit(1)).alias("view_count"))
    )
    catalog = (
        spark.read.parquet(args.catalog)
        .select("advertiser_id", "product_id")
        .withColumn("matched", F.lit(True))
    )
    pm = counts.join(catalog, ["advertiser_id", "product_id"], "left").select(
        F.to_date(F.lit(args.date)).alias("day"),
        "advertiser_id",
        "product_id",
        "view_count",
        F.coalesce(F.col("matched"), F.lit(False)).alias("matched"),
    )
    pm = pm.persist()
    pm.write.mode("overwrite").option("compression", "zstd").parquet(pm_dir)
    matched_views = F.when(F.col("matched"), F.col("view_count")).otherwise(F.lit(0))
    rates = (
        pm.groupBy("day", "advertiser_id")
        .agg(
            F.sum("view_count").cast("bigint").alias("total_views"),
            F.sum(matched_views).cast("bigint").alias("matched_views"),
            F.count(F.lit(1)).cast("bigint").alias("total_products"),
            F.sum(F.col("matched").cast("bigint")).cast("bigint").alias("matched_products"),
        )
        .withColumn("match_rate", F.col("matched_views") / F.col("total_views"))
        .orderBy("advertiser_id")
    )
    rates.coalesce(1).write.mode("overwrite").option("compression", "zstd").parquet(ar_dir)
    spark.stop()


# --------------------------------------------------------------------------------------------
# Checking


def check_outputs(outputs, day, reference="emrship-job"):
    """Every output against the reference, through DuckDB: the same product rows (multiset
    equality over all columns) and the same per-advertiser numbers."""
    import duckdb

    con = duckdb.connect()

    def rel(out, table):
        pattern = os.path.join(out, table, f"day={day}", "*.parquet")
        return f"read_parquet('{pattern}', hive_partitioning = false)"

    def pm(out):
        return (
            f"SELECT day::DATE AS day, advertiser_id::VARCHAR AS a, product_id::VARCHAR AS p, "
            f"view_count::BIGINT AS n, matched::BOOLEAN AS m FROM {rel(out, PRODUCT_MATCHES)}"
        )

    ref = outputs[reference]
    ref_rows = con.execute(f"SELECT count(*), sum(n), count(*) FILTER (WHERE m) FROM ({pm(ref)})").fetchone()
    report = {"product_rows": ref_rows[0], "views": int(ref_rows[1]), "matched_pairs": ref_rows[2]}
    problems = []
    for name, out in outputs.items():
        if name == reference:
            continue
        diff = con.execute(
            f"SELECT (SELECT count(*) FROM ({pm(ref)} EXCEPT ALL {pm(out)})),"
            f"       (SELECT count(*) FROM ({pm(out)} EXCEPT ALL {pm(ref)}))"
        ).fetchone()
        if diff != (0, 0):
            problems.append(
                f"{name}: product_matches differs from {reference}: "
                f"{diff[0]} rows only in {reference}, {diff[1]} only in {name}"
            )
        bad = con.execute(
            f"""
            WITH r AS (SELECT * FROM {rel(ref, ADVERTISER_RATES)}),
                 o AS (SELECT * FROM {rel(out, ADVERTISER_RATES)})
            SELECT count(*) FROM r FULL OUTER JOIN o USING (advertiser_id)
            WHERE r.day IS DISTINCT FROM o.day::DATE
               OR r.total_views IS DISTINCT FROM o.total_views::BIGINT
               OR r.matched_views IS DISTINCT FROM o.matched_views::BIGINT
               OR r.total_products IS DISTINCT FROM o.total_products::BIGINT
               OR r.matched_products IS DISTINCT FROM o.matched_products::BIGINT
               OR r.match_rate IS NULL OR o.match_rate IS NULL
               OR abs(r.match_rate - o.match_rate) > 1e-12
            """
        ).fetchone()[0]
        if bad:
            problems.append(f"{name}: advertiser_match_rates differs from {reference} in {bad} advertisers")
    report["advertisers"] = con.execute(
        f"SELECT count(*) FROM {rel(ref, ADVERTISER_RATES)}"
    ).fetchone()[0]
    if problems:
        raise SystemExit("bench: outputs disagree:\n  " + "\n  ".join(problems))
    return report


# --------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_part(args, emrship_out, work):
    """psql \\copy of the day's product rows into a bare table and into one with the primary
    key, against emrship-job's PostgreSQL sink landing the same day (its `sink` phase, and the
    whole process)."""
    import duckdb

    schema = "emrship_bench"
    csv = os.path.join(work, "product_matches.csv")
    pattern = os.path.join(emrship_out, PRODUCT_MATCHES, f"day={args.date}", "*.parquet")
    duckdb.connect().execute(
        f"COPY (SELECT day, advertiser_id, product_id, view_count, matched "
        f"FROM read_parquet('{pattern}', hive_partitioning = false)) TO '{csv}' (HEADER false)"
    )

    def psql(sql):
        return ["psql", args.pg_url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]

    subprocess.run(
        psql(
            f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
            f"CREATE TABLE {schema}.bare (day date, advertiser_id text, product_id text,"
            f" view_count bigint, matched boolean);"
            f"CREATE TABLE {schema}.keyed (day date, advertiser_id text, product_id text,"
            f" view_count bigint, matched boolean, PRIMARY KEY (day, advertiser_id, product_id));"
        ),
        check=True,
    )
    log = os.path.join(work, "postgres.log")
    result = {}
    for table in ("bare", "keyed"):
        result[f"copy_{table}"] = benchlib.measure(
            psql(f"\\copy {schema}.{table} FROM '{csv}' (FORMAT csv)"), log=log
        )
        print(f"bench: psql \\copy into {table}: {result[f'copy_{table}']['wall_s']:.1f} s", file=sys.stderr)
    os.remove(csv)
    sep = "&" if "?" in args.pg_url else "?"
    sink = f"{args.pg_url}{sep}options=-csearch_path%3D{schema}"
    for attempt in ("sink_first", "sink_rerun"):
        report_path = os.path.join(work, f"{attempt}.json")
        cmd = [
            "sh", "-c",
            '"$0" match-rate --date "$1" --views "$2" --catalog "$3" --sink "$4" '
            '--threads "$5" --format json > "$6"',
            args.emrship_job, args.date, args.views, args.catalog, sink,
            str(args.threads), report_path,
        ]
        m = benchlib.measure(cmd, log=log)
        with open(report_path) as f:
            m["phases_s"] = json.load(f).get("seconds", {})
        result[attempt] = m
        print(f"bench: emrship-job → PostgreSQL ({attempt}): sink phase "
              f"{m['phases_s'].get('sink', float('nan')):.1f} s, process {m['wall_s']:.1f} s",
              file=sys.stderr)
    landed = subprocess.run(
        psql(
            f"SELECT count(*) FROM {schema}.product_matches WHERE day = DATE '{args.date}';"
            f"SELECT count(*) FROM pg_indexes WHERE schemaname = '{schema}'"
            f" AND indexdef ILIKE '%(day, advertiser_id, product_id)%';"
        ),
        check=True, capture_output=True, text=True,
    ).stdout.split()
    result["landed_rows"] = int(landed[0])
    result["indexes_on_key"] = int(landed[1])
    return result


# --------------------------------------------------------------------------------------------
# The harness


def bench(args):
    here = os.path.abspath(__file__)
    work = args.work or tempfile.mkdtemp(prefix="emrship-bench-")
    os.makedirs(work, exist_ok=True)
    engines = [e for e in args.engines.split(",") if e]
    py = sys.executable
    env = dict(os.environ, POLARS_MAX_THREADS=str(args.threads))

    def out_dir(name):
        return os.path.join(work, "out", name)

    def command(name):
        common = ["--views", args.views, "--catalog", args.catalog, "--date", args.date,
                  "--threads", str(args.threads), "--out", out_dir(name)]
        if name == "emrship-job":
            return [args.emrship_job, "match-rate", "--engine", "local", "--date", args.date,
                    "--views", args.views, "--catalog", args.catalog,
                    "--sink", out_dir(name), "--threads", str(args.threads)]
        if name == "pyspark":
            return [args.spark_submit, "--master", f"local[{args.threads}]",
                    "--driver-memory", args.spark_driver_memory,
                    "--conf", "spark.ui.enabled=false", here, "pyspark"] + common
        return [py, here, name] + common

    runs = {name: [] for name in engines}
    rounds = max(args.runs, args.spark_runs if "pyspark" in engines else 0)
    print(f"bench: warming the page cache ({args.views}, {args.catalog})", file=sys.stderr)
    benchlib.warm([args.views, args.catalog])
    for r in range(rounds):
        for name in engines:
            wanted = args.spark_runs if name == "pyspark" else args.runs
            if r >= wanted:
                continue
            shutil.rmtree(out_dir(name), ignore_errors=True)
            m = benchlib.measure(command(name), env=env, log=os.path.join(work, f"{name}.log"))
            runs[name].append(m)
            print(f"bench: {name} run {r + 1}/{wanted}: {m['wall_s']:.1f} s wall, "
                  f"{m['cpu_s']:.1f} s CPU, {m['peak_rss_bytes'] / 2**30:.2f} GiB peak",
                  file=sys.stderr)

    agreement = check_outputs({n: out_dir(n) for n in engines}, args.date)
    print(f"bench: all outputs agree: {agreement}", file=sys.stderr)

    medians = benchlib.medians(runs)
    base = medians["emrship-job"]
    rows = []
    for name in engines:
        m = medians[name]
        rows.append({
            "engine": name, **m,
            "wall_ratio": m["wall_s"] / base["wall_s"],
            "cpu_ratio": m["cpu_s"] / base["cpu_s"],
            "peak_ratio": m["peak_rss_bytes"] / base["peak_rss_bytes"],
        })

    postgres = None
    if args.pg_url:
        postgres = postgres_part(args, out_dir("emrship-job"), work)

    result = {
        "date": args.date,
        "threads": args.threads,
        "cores": os.cpu_count(),
        "data": {"views": args.views, "catalog": args.catalog, "scale": args.scale},
        "agreement": agreement,
        "runs": runs,
        "medians": rows,
        "postgres": postgres,
        "versions": versions(args),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    print_table(result)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"bench: results in {args.json}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)


def versions(args):
    import duckdb
    import polars

    out = {"duckdb": duckdb.__version__, "polars": polars.__version__}
    try:
        import pyspark

        out["pyspark"] = pyspark.__version__
    except ImportError:
        pass
    out["emrship-job"] = subprocess.run(
        [args.emrship_job, "--version"], capture_output=True, text=True
    ).stdout.strip()
    return out


def print_table(result):
    print(f"match-rate, {result['agreement']['views']:,} views, "
          f"{result['agreement']['product_rows']:,} pairs, "
          f"{result['agreement']['advertisers']:,} advertisers; "
          f"{result['threads']} threads; medians")
    print(f"{'engine':<12} {'runs':>4} {'wall s':>8} {'CPU s':>8} {'peak GiB':>9} "
          f"{'wall ×':>7} {'CPU ×':>7} {'peak ×':>7}")
    for r in result["medians"]:
        print(f"{r['engine']:<12} {r['runs']:>4} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} "
              f"{r['peak_rss_bytes'] / 2**30:>9.2f} {r['wall_ratio']:>7.2f} "
              f"{r['cpu_ratio']:>7.2f} {r['peak_ratio']:>7.2f}")
    print("(× = peer / emrship-job: above 1 means emrship-job is faster or smaller)")
    pg = result["postgres"]
    if pg:
        bare = pg["copy_bare"]["wall_s"]
        print(f"\nPostgreSQL, {pg['landed_rows']:,} product rows of the day")
        print(f"{'load':<42} {'s':>7} {'× bare':>7}")
        for label, secs in [
            ("psql \\copy, bare table", bare),
            ("psql \\copy, table with primary key", pg["copy_keyed"]["wall_s"]),
            ("emrship-job sink, first load (sink phase)", pg["sink_first"]["phases_s"].get("sink")),
            ("emrship-job sink, re-run (sink phase)", pg["sink_rerun"]["phases_s"].get("sink")),
            ("emrship-job, whole job into PostgreSQL", pg["sink_first"]["wall_s"]),
        ]:
            print(f"{label:<42} {secs:>7.2f} {secs / bare:>7.2f}")
        print(f"indexes on (day, advertiser_id, product_id): {pg['indexes_on_key']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("duckdb", "polars", "pyspark"):
        p = sub.add_parser(name, help=f"run the job with {name}")
        for flag in ("--views", "--catalog", "--date", "--out"):
            p.add_argument(flag, required=True)
        p.add_argument("--threads", type=int, default=os.cpu_count())
        p.add_argument("--format", choices=sorted(FORMATS), default="parquet",
                       help="the inputs' format (DuckDB and Polars)")
    b = sub.add_parser("bench", help="run and compare every engine")
    b.add_argument("--emrship-job", required=True)
    b.add_argument("--views", required=True)
    b.add_argument("--catalog", required=True)
    b.add_argument("--date", required=True)
    b.add_argument("--threads", type=int, default=os.cpu_count())
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--spark-runs", type=int, default=1)
    b.add_argument("--engines", default="emrship-job,duckdb,polars,pyspark")
    b.add_argument("--spark-submit", default="spark-submit")
    b.add_argument("--spark-driver-memory", default="4g")
    b.add_argument("--pg-url", default="")
    b.add_argument("--scale", type=float, default=1.0)
    b.add_argument("--work")
    b.add_argument("--json")
    b.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.command == "bench":
        bench(args)
    else:
        {"duckdb": peer_duckdb, "polars": peer_polars, "pyspark": peer_pyspark}[args.command](args)


if __name__ == "__main__":
    main()
