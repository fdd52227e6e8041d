#!/usr/bin/env python3
"""The rollup benchmark: emrship-job against DuckDB, Polars and PySpark on the same files.

Run through scripts/bench-rollup.sh, which builds emrship-job, makes the venv of
bench/requirements.txt and generates the events (`emrship-job gen rollup`). Two roles:

- `bench`: the harness. Runs every tool as a whole process, round-robin, N times, measures
  wall time, CPU time (user+sys) and peak RSS of the process and everything it waited for
  (os.wait4), checks that all outputs hold the same documents, prints a table of medians and
  ratios (peer / emrship-job) beside the seed's published figures; writes JSON too.
- `duckdb`, `polars`, `pyspark`: the peers, each doing the rollup job's data contract on
  the Hive-partitioned events
  ROOT/year=…/month=…/day=…/hour=…/customer=…/part-*.parquet, grouped by (customer, url, hour
  floor of ts in UTC — not the directory's hour: late events), page_views = count(*),
  visitors = count(distinct session_id), referrers = counts per non-null referrer; one JSON
  document per group, JSON Lines, keys in the contract's order, each file sorted by _id:
  {"_id":"<url>|<customer>|<YYYY-MM-DDTHH:00:00>","customer":…,"url":…,"ts":…,
   "freq":"1hour","metrics":{"page_views":N,"visitors":M},"referrers":{…}}
"""

import argparse
import collections
import datetime as dt
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import benchlib
import match_rate_bench

DOC_KEYS = ["_id", "customer", "url", "ts", "freq", "metrics", "referrers"]
# The seed's figures (Parse.ly, "Adapting from Spark to Dask"): 100,000,000 records,
# 2,000,000 records per file, 2 files per hour, a 4-core MacBook Pro (2.8 GHz i7, 16 GB).
SEED = {"records": 100_000_000, "spark_s": 170, "dask_s": 37}
TOOLS = ["emrship-job", "duckdb", "polars", "pyspark"]
# The events' columns in a text format (CSV, JSON Lines), for the peers' readers.
EVENT_COLUMNS = {"customer": "VARCHAR", "url": "VARCHAR", "referrer": "VARCHAR",
                 "session_id": "VARCHAR", "ts": "TIMESTAMPTZ"}


def finish(out):
    """The contract's marker, written last (as emrship-job and Spark do)."""
    with open(os.path.join(out, "_SUCCESS"), "w"):
        pass


# --------------------------------------------------------------------------------------------
# Peers


def peer_duckdb(args):
    import duckdb

    os.makedirs(args.out, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute("SET preserve_insertion_order = false")
    # date_trunc and strftime of a TIMESTAMPTZ follow the session's time zone.
    con.execute("SET TimeZone = 'UTC'")
    if args.format == "parquet":
        files = os.path.join(args.input, "*", "*", "*", "*", "*", "*.parquet")
        if args.flat:
            files = os.path.join(args.input, "*.parquet")
        source = f"read_parquet('{files}', hive_partitioning = true)"
    else:
        source = match_rate_bench.duck_scan(args.input, args.format, EVENT_COLUMNS)
    hour = "strftime(h, '%Y-%m-%dT%H:%M:%S')"
    con.execute(
        f"""
        COPY (
            SELECT url || '|' || customer || '|' || {hour} AS _id, customer, url,
                   {hour} AS ts, '1hour' AS freq,
                   struct_pack(page_views := count(*),
                               visitors := count(DISTINCT session_id)) AS metrics,
                   -- histogram skips nulls (direct visits) and sorts its keys.
                   coalesce(histogram(referrer), MAP {{}}) AS referrers
            FROM (
                SELECT customer, url, referrer, session_id, date_trunc('hour', ts) AS h
                FROM {source}
            )
            GROUP BY customer, url, h
            ORDER BY _id
        ) TO '{os.path.join(args.out, "part-00000.jsonl")}' (FORMAT json)
        """
    )
    finish(args.out)


def peer_polars(args):
    # Polars reads POLARS_MAX_THREADS at import; the harness sets it.
    import polars as pl

    os.makedirs(args.out, exist_ok=True)
    keys = ["customer", "url", "h"]
    if args.format == "parquet":
        scan = pl.scan_parquet(args.input, hive_partitioning=True)
    else:
        scan = match_rate_bench.polars_scan(args.input, args.format, EVENT_COLUMNS)
    events = scan.select(
        "customer", "url", "referrer", "session_id", pl.col("ts").dt.truncate("1h").alias("h")
    )
    metrics = events.group_by(keys).agg(
        pl.len().alias("page_views"), pl.col("session_id").n_unique().alias("visitors")
    )

    def js(expr):
        """A JSON string literal of a string expression."""
        escaped = expr.str.replace_all("\\", "\\\\", literal=True).str.replace_all(
            '"', '\\"', literal=True
        )
        return pl.concat_str(pl.lit('"'), escaped, pl.lit('"'))

    # Polars has no map type: the referrers object is built as text, keys sorted.
    referrers = (
        events.filter(pl.col("referrer").is_not_null())
        .group_by(keys + ["referrer"])
        .agg(pl.len().alias("n"))
        .group_by(keys)
        .agg(
            pl.concat_str(js(pl.col("referrer")), pl.lit(":"), pl.col("n").cast(pl.String))
            .sort_by("referrer")
            .str.join(",")
            .alias("referrers")
        )
    )
    ts = pl.col("h").dt.strftime("%Y-%m-%dT%H:%M:%S")
    _id = pl.concat_str(pl.col("url"), pl.lit("|"), pl.col("customer"), pl.lit("|"), ts)
    line = pl.concat_str(
        pl.lit('{"_id":'), js(_id),
        pl.lit(',"customer":'), js(pl.col("customer")),
        pl.lit(',"url":'), js(pl.col("url")),
        pl.lit(',"ts":'), js(ts),
        pl.lit(',"freq":"1hour","metrics":{"page_views":'), pl.col("page_views").cast(pl.String),
        pl.lit(',"visitors":'), pl.col("visitors").cast(pl.String),
        pl.lit('},"referrers":{'), pl.col("referrers").fill_null(""), pl.lit("}}"),
    )
    lines = (
        metrics.join(referrers, on=keys, how="left")
        .select(_id.alias("_id"), line.alias("line"))
        .sort("_id")
        .select("line")
        .collect(engine="streaming")
    )
    # Each value is one finished JSON document: written as is, one per line.
    lines.write_csv(
        os.path.join(args.out, "part-00000.jsonl"), include_header=False, quote_style="never"
    )
    finish(args.out)


def peer_pyspark(args):
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.appName("rollup-bench").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    # As the seed's Spark job: partition discovery, a one-hour window, countDistinct; the
    # referrer counts natively (a second aggregation, then map_from_entries), no UDF.
    df = spark.read.parquet(args.input)
    keys = ["customer", "url", "h"]
    events = df.select(
        "customer", "url", "referrer", "session_id", F.window("ts", "1 hour").start.alias("h")
    )
    metrics = events.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("page_views"), F.countDistinct("session_id").alias("visitors")
    )
    referrers = (
        events.where(F.col("referrer").isNotNull())
        .groupBy(*keys, "referrer")
        .agg(F.count(F.lit(1)).alias("n"))
        .groupBy(*keys)
        .agg(
            F.map_from_entries(F.array_sort(F.collect_list(F.struct("referrer", "n")))).alias(
                "referrers"
            )
        )
    )
    ts = F.date_format("h", "yyyy-MM-dd'T'HH:mm:ss")
    out = (
        metrics.join(referrers, keys, "left")
        .select(
            F.concat_ws("|", "url", "customer", ts).alias("_id"),
            "customer",
            "url",
            ts.alias("ts"),
            F.lit("1hour").alias("freq"),
            F.struct("page_views", "visitors").alias("metrics"),
            F.coalesce("referrers", F.create_map().cast("map<string,bigint>")).alias(
                "referrers"
            ),
        )
        .sortWithinPartitions("_id")
    )
    out.write.mode("overwrite").json(args.out)
    spark.stop()


# --------------------------------------------------------------------------------------------
# Checking


def output_files(out):
    """The JSON Lines files of an output: `part-*.jsonl` (the contract) or Spark's
    `part-*.json`."""
    files = sorted(glob.glob(os.path.join(out, "part-*.jsonl")))
    files += sorted(glob.glob(os.path.join(out, "part-*.json")))
    return files


def digest_output(name, out):
    """The multiset of an output's documents as sorted digests of their canonical JSON, with
    totals; checks the contract's form on the way (keys in order, referrer keys sorted, each
    file sorted by _id, _SUCCESS present). Returns (digests, totals, problems)."""
    problems = []
    if not os.path.exists(os.path.join(out, "_SUCCESS")):
        problems.append(f"{name}: no _SUCCESS in {out}")
    files = output_files(out)
    if not files:
        problems.append(f"{name}: no part-*.jsonl files in {out}")
    digests = []
    totals = collections.Counter()
    for path in files:
        previous = None
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                where = f"{name}: {path}:{number}"
                try:
                    doc = json.loads(raw)
                except ValueError as e:
                    raise SystemExit(f"bench: {where}: not JSON: {e}")
                if list(doc) != DOC_KEYS and len(problems) < 20:
                    problems.append(f"{where}: keys {list(doc)}, expected {DOC_KEYS}")
                referrers = doc.get("referrers") or {}
                keys = [k.encode() for k in referrers]
                if keys != sorted(keys) and len(problems) < 20:
                    problems.append(f"{where}: referrer keys not sorted bytewise")
                _id = doc.get("_id", "").encode()
                if previous is not None and _id < previous and len(problems) < 20:
                    problems.append(f"{where}: _id {doc['_id']!r} after a greater one")
                previous = _id
                canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
                digests.append(hashlib.blake2b(canonical.encode(), digest_size=16).digest())
                metrics = doc.get("metrics") or {}
                totals["documents"] += 1
                totals["page_views"] += metrics.get("page_views", 0)
                totals["visitors"] += metrics.get("visitors", 0)
                totals["referred_views"] += sum(referrers.values())
    digests.sort()
    return digests, dict(totals), problems


def differing_examples(reference, out, limit=3):
    """A few documents found in only one of two outputs (canonical JSON)."""

    def docs(path):
        c = collections.Counter()
        for f in output_files(path):
            with open(f, "rb") as h:
                for raw in h:
                    if raw.strip():
                        c[json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))] += 1
        return c

    a, b = docs(reference), docs(out)
    return list((a - b).elements())[:limit], list((b - a).elements())[:limit]


def check_outputs(outputs):
    """Every output against the first one: the same multiset of documents (parsed JSON)."""
    names = list(outputs)
    reference = names[0]
    ref_digests, ref_totals, problems = digest_output(reference, outputs[reference])
    for name in names[1:]:
        digests, totals, form = digest_output(name, outputs[name])
        problems += form
        if digests != ref_digests:
            only_ref, only_this = differing_examples(outputs[reference], outputs[name])
            problems.append(
                f"{name} differs from {reference}: {totals} vs {ref_totals}\n"
                f"    only in {reference}: {only_ref}\n    only in {name}: {only_this}"
            )
    if problems:
        raise SystemExit("bench: outputs disagree or break the contract:\n  " + "\n  ".join(problems))
    return ref_totals


# --------------------------------------------------------------------------------------------
# The harness


def tool_names(text):
    names = []
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        name = "emrship-job" if raw == "emrship" else raw
        if name not in TOOLS:
            raise SystemExit(f"bench: unknown tool {raw!r}; choose from {', '.join(TOOLS)} (or emrship)")
        if name not in names:
            names.append(name)
    if not names:
        raise SystemExit("bench: --tools names no tool")
    return names


def bench(args):
    here = os.path.abspath(__file__)
    tools = tool_names(args.tools)
    work = args.work or tempfile.mkdtemp(prefix="emrship-bench-")
    os.makedirs(work, exist_ok=True)
    py = sys.executable
    # Spark's driver and block manager listen on loopback only.
    env = dict(os.environ, POLARS_MAX_THREADS=str(args.threads), SPARK_LOCAL_IP="127.0.0.1")

    def out_dir(name):
        return os.path.join(work, "out", name)

    def command(name):
        if name == "emrship-job":
            return [args.emrship_job, "rollup", "--engine", "local", "--input", args.input,
                    "--output", out_dir(name), "--threads", str(args.threads)]
        common = ["--input", args.input, "--out", out_dir(name), "--threads", str(args.threads)]
        if name == "pyspark":
            return [args.spark_submit, "--master", f"local[{args.threads}]",
                    "--driver-memory", args.spark_driver_memory,
                    "--conf", "spark.ui.enabled=false", here, "pyspark"] + common
        return [py, here, name] + common

    runs = {name: [] for name in tools}
    rounds = max(args.spark_runs if name == "pyspark" else args.runs for name in tools)
    print(f"bench: warming the page cache ({args.input})", file=sys.stderr)
    benchlib.warm([args.input])
    for r in range(rounds):
        for name in tools:
            wanted = args.spark_runs if name == "pyspark" else args.runs
            if r >= wanted:
                continue
            shutil.rmtree(out_dir(name), ignore_errors=True)
            os.makedirs(os.path.dirname(out_dir(name)), exist_ok=True)
            m = benchlib.measure(command(name), env=env, log=os.path.join(work, f"{name}.log"))
            runs[name].append(m)
            print(f"bench: {name} run {r + 1}/{wanted}: {m['wall_s']:.1f} s wall, "
                  f"{m['cpu_s']:.1f} s CPU, {m['peak_rss_bytes'] / 2**30:.2f} GiB peak",
                  file=sys.stderr)

    totals = check_outputs({n: out_dir(n) for n in tools})
    print(f"bench: all {len(tools)} outputs hold the same documents: {totals}", file=sys.stderr)

    medians = benchlib.medians(runs)
    base_name = "emrship-job" if "emrship-job" in tools else tools[0]
    base = medians[base_name]
    rows = []
    for name in tools:
        m = medians[name]
        rows.append({
            "tool": name, **m,
            "wall_ratio": m["wall_s"] / base["wall_s"],
            "cpu_ratio": m["cpu_s"] / base["cpu_s"],
            "peak_ratio": m["peak_rss_bytes"] / base["peak_rss_bytes"],
        })

    result = {
        "records": args.records,
        "threads": args.threads,
        "cores": os.cpu_count(),
        "input": args.input,
        "input_bytes": sum(
            os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.input) for f in fs
        ),
        "output": totals,
        "ratios_against": base_name,
        "runs": runs,
        "medians": rows,
        "seed": SEED,
        "versions": versions(args, tools),
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


def versions(args, tools):
    out = {}
    if "duckdb" in tools:
        import duckdb

        out["duckdb"] = duckdb.__version__
    if "polars" in tools:
        import polars

        out["polars"] = polars.__version__
    if "pyspark" in tools:
        import pyspark

        out["pyspark"] = pyspark.__version__
    out["emrship-job"] = subprocess.run(
        [args.emrship_job, "--version"], capture_output=True, text=True
    ).stdout.strip()
    return out


def clock(seconds):
    """m:ss, as the seed reports its timings."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def print_table(result):
    out = result["output"]
    print(f"rollup, {result['records']:,} events -> {out['documents']:,} documents "
          f"({out['page_views']:,} page views, {out['visitors']:,} visitors); "
          f"{result['threads']} threads on {result['cores']} cores; medians")
    print(f"{'tool':<12} {'runs':>4} {'wall s':>8} {'m:ss':>6} {'CPU s':>8} {'peak GiB':>9} "
          f"{'wall ×':>7} {'CPU ×':>7} {'peak ×':>7}")
    for r in result["medians"]:
        print(f"{r['tool']:<12} {r['runs']:>4} {r['wall_s']:>8.2f} {clock(r['wall_s']):>6} "
              f"{r['cpu_s']:>8.2f} {r['peak_rss_bytes'] / 2**30:>9.2f} {r['wall_ratio']:>7.2f} "
              f"{r['cpu_ratio']:>7.2f} {r['peak_ratio']:>7.2f}")
    print(f"(× = tool / {result['ratios_against']}: above 1 means {result['ratios_against']} "
          "is faster or smaller)")
    seed = result["seed"]
    print(f"seed, {seed['records']:,} records, 2,000,000 per file, 4-core laptop: "
          f"Spark {clock(seed['spark_s'])}, Dask {clock(seed['dask_s'])} (wall)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("duckdb", "polars", "pyspark"):
        p = sub.add_parser(name, help=f"run the rollup with {name}")
        p.add_argument("--input", required=True, help="the events' root directory")
        p.add_argument("--out", required=True)
        p.add_argument("--threads", type=int, default=os.cpu_count())
        p.add_argument("--format", choices=sorted(match_rate_bench.FORMATS), default="parquet",
                       help="the events' format (DuckDB and Polars)")
        p.add_argument("--flat", action="store_true",
                       help="Parquet files directly under --input (not Hive-partitioned)")
    b = sub.add_parser("bench", help="run and compare every tool")
    b.add_argument("--emrship-job", required=True)
    b.add_argument("--input", required=True)
    b.add_argument("--records", type=int, required=True)
    b.add_argument("--threads", type=int, default=os.cpu_count())
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--spark-runs", type=int, default=1)
    b.add_argument("--tools", default=",".join(TOOLS))
    b.add_argument("--spark-submit", default="spark-submit")
    b.add_argument("--spark-driver-memory", default="6g")
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
