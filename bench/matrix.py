#!/usr/bin/env python3
"""The benchmark matrix: both jobs of emrship-job against DuckDB and Polars on data of many
shapes, written by pyarrow, DuckDB and Polars (never by emrship-job's own generator).

Run through scripts/bench-matrix.sh (it builds emrship-job and the venv). For each row of the
matrix: generates the row's files once (cached under --data, keyed by the row's parameters),
warms the page cache, runs every tool as a whole process with the same thread count
round-robin --runs times, checks the outputs equal (the checks of match_rate_bench.py and
rollup_bench.py), and reports medians of wall, CPU and peak RSS with the ratios
peer / emrship-job and whether the issue's targets hold (match-rate ≥ 1.5× faster than the
fastest peer, rollup ≥ 3×, each with a lower peak RSS than every peer).

The data is made in DuckDB from a hash of the row number (deterministic, no RNG state), then
written by the row's writer:
- `pyarrow-dict`: pyarrow with a dictionary page limit large enough that every string column
  stays dictionary-encoded;
- `pyarrow`: pyarrow's defaults (dictionary pages fall back to PLAIN once past 1 MiB: what
  high-cardinality columns look like in the wild);
- `spark`: as Spark writes: many part files, snappy, smaller row groups (emulated in pyarrow);
- `duckdb`, `polars`: each library's own Parquet writer and defaults;
- `csv`, `jsonl`: text, timestamps as ISO 8601 with a Z (written by DuckDB).
Keys are uniform or Zipf-skewed (P(k) ∝ 1/k, as exp(u·ln K)); ids short (≤ 16 bytes) or
UUID-length (36).
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import tempfile

import benchlib
import match_rate_bench
import rollup_bench

DAY = "2026-11-20"
TOOLS = ["emrship-job", "duckdb", "polars"]
TARGET = {"match-rate": 1.5, "rollup": 3.0}


# --------------------------------------------------------------------------------------------
# The rows. `groups` is the fraction of events that become output rows (distinct pairs for the
# match-rate, documents for the rollup), before Zipf skew shrinks it.

BASE = {"writer": "pyarrow", "files": 8, "ids": "short", "keys": "uniform", "groups": 0.10}


def row(job, name, **changes):
    return {"job": job, "name": name, **BASE, **changes}


# The same shapes for both jobs (match-rate's rows first, as the report lists them).
SHAPES = [
    ("dict", {"writer": "pyarrow-dict"}),
    ("plain", {}),
    ("plain-uuid", {"ids": "uuid"}),
    ("few-groups", {"groups": 0.01}),
    ("many-groups", {"groups": 0.30}),
    ("zipf", {"keys": "zipf"}),
    ("spark", {"writer": "spark", "files": 64}),
    ("many-small-files", {"files": 400}),
    ("duckdb-writer", {"writer": "duckdb"}),
    ("polars-writer", {"writer": "polars"}),
    ("csv", {"writer": "csv"}),
    ("jsonl", {"writer": "jsonl"}),
]
ROWS = [row(job, name, **changes) for job in ("match-rate", "rollup") for name, changes in SHAPES]


def shape_text(r):
    return (f"{r['writer']}, {r['files']} files, {r['ids']} ids, {r['keys']} keys, "
            f"{r['groups']:.0%} groups")


# --------------------------------------------------------------------------------------------
# Generating


def uniform(salt):
    """A uniform double in [0, 1) from the row number `i` and a salt."""
    return f"((hash(i * 64 + {salt}) >> 11)::DOUBLE / 9007199254740992.0)"


def pick(keys, space, salt):
    """A key in [0, space): uniform, or Zipf-skewed (P(k) ∝ 1/(k+1))."""
    u = uniform(salt)
    if keys == "zipf":
        return f"least({space} - 1, floor(exp({u} * ln({space})))::BIGINT - 1)"
    return f"floor({u} * {space})::BIGINT"


def id_text(ids, prefix, value):
    """A string id of an integer SQL expression: short (prefix + 14 hex digits, ≤ 16 bytes) or
    UUID-shaped (36 bytes), both from md5 so they look random."""
    m = f"md5('{prefix}' || ({value})::VARCHAR)"
    if ids == "uuid":
        return (f"(substr({m}, 1, 8) || '-' || substr({m}, 9, 4) || '-' || substr({m}, 13, 4)"
                f" || '-' || substr({m}, 17, 4) || '-' || substr({m}, 21, 12))")
    return f"('{prefix}' || substr({m}, 1, 14))"


def iso(expr):
    return f"strftime({expr}, '%Y-%m-%dT%H:%M:%S.%fZ')"


def match_rate_sql(r, n):
    """(views SQL over i in [lo, hi), catalog SQL over k in [lo, hi), catalog size). Pairs:
    `groups · n` key slots, 3,000 advertisers (key mod 3,000); 2% of views have no time, 3% are
    on the next day; the catalog holds 60% of the key slots and as many unviewed keys again."""
    space = max(1, round(r["groups"] * n * 1.05))
    advertisers = min(3000, space)
    k = pick(r["keys"], space, 1)
    start = f"TIMESTAMPTZ '{DAY} 00:00:00+00'"
    t = f"({start} + to_microseconds(({uniform(4)} * 86400e6)::BIGINT))"
    late = f"({start} + INTERVAL 1 DAY + to_microseconds(({uniform(4)} * 86400e6)::BIGINT))"
    views = f"""
        SELECT {id_text(r['ids'], 'a', 'k % ' + str(advertisers))} AS advertiser_id,
               {id_text(r['ids'], 'p', 'k')} AS product_id,
               CASE WHEN u < 0.02 THEN NULL WHEN u < 0.05 THEN {late} ELSE {t} END
                   AS event_time
        FROM (SELECT i, {k} AS k, {uniform(3)} AS u FROM range({{lo}}, {{hi}}) r(i))
    """
    catalog = f"""
        SELECT {id_text(r['ids'], 'a', 'k % ' + str(advertisers))} AS advertiser_id,
               {id_text(r['ids'], 'p', 'k')} AS product_id
        FROM range({{lo}}, {{hi}}) r(k)
        WHERE k >= {space} OR hash(k * 64 + 9) % 10 < 6
    """
    return views, catalog, space * 2


def rollup_sql(r, n):
    """Events SQL over i in [lo, hi). Urls: as many as make `groups · n` (url, hour) groups
    (uniform or Zipf), each of one customer (url mod customers); 24 hours; 30% of events
    without a referrer, the rest from 200 referrers (Zipf); sessions of ~8 events."""
    # Distinct (url, hour) of n uniform draws over urls·24 slots ≈ groups·n for these slots.
    slots = {0.01: 0.01, 0.10: 0.10, 0.30: 0.42}.get(r["groups"], r["groups"])
    urls = max(1, round(slots * n / 24))
    customers = max(1, min(3000, urls // 20))
    j = pick(r["keys"], urls, 1)
    referrer = f"'https://ref' || {pick('zipf', 200, 5)}::VARCHAR || '.example/'"
    hour = f"floor({uniform(2)} * 24)::BIGINT"
    start = f"TIMESTAMPTZ '{DAY} 00:00:00+00'"
    ts = f"({start} + to_microseconds(({hour} * 3600e6 + {uniform(3)} * 3600e6)::BIGINT))"
    session = f"floor({uniform(7)} * {max(1, n // 8)})::BIGINT"
    return f"""
        SELECT {id_text(r['ids'], 'c', 'j % ' + str(customers))}
                   AS customer,
               'https://site' || (j % {customers})::VARCHAR || '.example/' ||
                   substr(md5('u' || j::VARCHAR), 1, 10) AS url,
               CASE WHEN {uniform(6)} < 0.3 THEN NULL ELSE {referrer} END AS referrer,
               {id_text(r['ids'], 's', session)} AS session_id,
               {ts} AS ts
        FROM (SELECT i, {j} AS j FROM range({{lo}}, {{hi}}) r(i))
    """


def write_table(con, r, sql, total, directory):
    """Runs `sql` for rows [0, total) in r['files'] slices, each slice one file written by the
    row's writer into `directory`."""
    import pyarrow.parquet as pq
    import polars as pl

    os.makedirs(directory, exist_ok=True)
    files = max(1, min(r["files"], total))
    for f in range(files):
        lo, hi = total * f // files, total * (f + 1) // files
        query = sql.format(lo=lo, hi=hi)
        writer = r["writer"]
        base = os.path.join(directory, f"part-{f:05d}")
        if writer in ("csv", "jsonl"):
            rel = con.sql(query)
            casts = ", ".join(
                iso(c) + f" AS {c}" if str(t).startswith("TIMESTAMP") else c
                for c, t in zip(rel.columns, rel.types)
            )
            fmt = "csv, HEADER true" if writer == "csv" else "json"
            con.execute(f"COPY (SELECT {casts} FROM ({query})) TO '{base}.{writer}' (FORMAT {fmt})")
        elif writer == "duckdb":
            con.execute(f"COPY ({query}) TO '{base}.parquet' (FORMAT parquet)")
        else:
            table = con.sql(query).fetch_arrow_table()
            if writer == "polars":
                pl.from_arrow(table).write_parquet(f"{base}.parquet")
            elif writer == "pyarrow":
                pq.write_table(table, f"{base}.parquet")
            elif writer == "pyarrow-dict":
                pq.write_table(table, f"{base}.parquet", dictionary_pagesize_limit=1 << 30)
            elif writer == "spark":
                pq.write_table(table, f"{base}.parquet", compression="snappy",
                               row_group_size=128 * 1024, data_page_size=1 << 20)
            else:
                raise SystemExit(f"bench: unknown writer {writer}")


def row_key(r, n):
    text = json.dumps({k: r[k] for k in sorted(r) if k != "name"} | {"n": n, "v": 2},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def generate(r, n, data_root):
    """The row's data directory, generated unless already complete."""
    import duckdb

    root = os.path.join(data_root, f"{r['job']}-{r['name']}-{n}-{row_key(r, n)}")
    if os.path.exists(os.path.join(root, "_SUCCESS")):
        return root
    shutil.rmtree(root, ignore_errors=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    print(f"bench: generating {r['job']} {r['name']} ({n:,} events) into {root}", file=sys.stderr)
    if r["job"] == "match-rate":
        views, catalog, catalog_keys = match_rate_sql(r, n)
        write_table(con, r, views, n, os.path.join(root, "views"))
        write_table(con, r, catalog, catalog_keys, os.path.join(root, "catalog"))
    else:
        write_table(con, r, rollup_sql(r, n), n, os.path.join(root, "events"))
    open(os.path.join(root, "_SUCCESS"), "w").close()
    return root


# --------------------------------------------------------------------------------------------
# Running


def commands(r, root, out, args):
    fmt = {"csv": "csv", "jsonl": "jsonl"}.get(r["writer"], "parquet")
    py = sys.executable
    here = os.path.dirname(os.path.abspath(__file__))
    threads = str(args.threads)
    if r["job"] == "match-rate":
        views, catalog = os.path.join(root, "views"), os.path.join(root, "catalog")
        peer = ["--views", views, "--catalog", catalog, "--date", DAY, "--threads", threads,
                "--format", fmt]
        script = os.path.join(here, "match_rate_bench.py")
        return {
            "emrship-job": [args.emrship_job, "match-rate", "--engine", "local", "--date", DAY,
                            "--views", views, "--catalog", catalog,
                            "--sink", out("emrship-job"), "--threads", threads],
            "duckdb": [py, script, "duckdb", *peer, "--out", out("duckdb")],
            "polars": [py, script, "polars", *peer, "--out", out("polars")],
        }
    events = os.path.join(root, "events")
    peer = ["--input", events, "--threads", threads, "--format", fmt, "--flat"]
    script = os.path.join(here, "rollup_bench.py")
    return {
        "emrship-job": [args.emrship_job, "rollup", "--engine", "local", "--input", events,
                        "--output", out("emrship-job"), "--threads", threads],
        "duckdb": [py, script, "duckdb", *peer, "--out", out("duckdb")],
        "polars": [py, script, "polars", *peer, "--out", out("polars")],
    }


def same_lines(outputs):
    """True when every output's JSON Lines hold byte-identical lines (as multisets): then the
    parsed documents agree too, and the slower parsed comparison is only needed otherwise."""
    import collections

    def lines(out):
        c = collections.Counter()
        for path in rollup_bench.output_files(out):
            with open(path, "rb") as f:
                c.update(hash(line) for line in f if line.strip())
        return c

    names = list(outputs)
    reference = lines(outputs[names[0]])
    return all(lines(outputs[n]) == reference for n in names[1:])


def check(r, outputs):
    if r["job"] == "match-rate":
        return match_rate_bench.check_outputs(outputs, DAY)
    if same_lines(outputs):
        # Byte-identical documents: the contract's form is checked on the reference only.
        name = next(iter(outputs))
        _, totals, problems = rollup_bench.digest_output(name, outputs[name])
        if problems:
            raise SystemExit("bench: " + "\n  ".join(problems))
        return totals
    return rollup_bench.check_outputs(outputs)


def in_child(*argv):
    """Runs this script with `argv` in a child process and returns its stdout. Generating and
    checking load DuckDB, pyarrow and Polars; done here, they would grow this harness, and a
    child's peak RSS (ru_maxrss) starts from its parent's at fork — every tool measured after
    would inherit it."""
    import subprocess

    done = subprocess.run([sys.executable, os.path.abspath(__file__), *argv],
                          stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv[:2])} failed (exit {done.returncode})")
    return done.stdout


def run_row(r, n, args, work):
    row_id = f"{r['job']}:{r['name']}"
    root = in_child("--internal-generate", row_id, "--events", str(n), "--data",
                    args.data).strip()
    row_work = os.path.join(work, f"{r['job']}-{r['name']}")
    os.makedirs(row_work, exist_ok=True)

    def out(name):
        return os.path.join(row_work, "out", name)

    cmds = commands(r, root, out, args)
    env = dict(os.environ, POLARS_MAX_THREADS=str(args.threads))
    benchlib.warm([root])
    runs = {name: [] for name in TOOLS}
    for i in range(args.runs):
        for name in TOOLS:
            shutil.rmtree(out(name), ignore_errors=True)
            os.makedirs(os.path.dirname(out(name)), exist_ok=True)
            m = benchlib.measure(cmds[name], env=env, log=os.path.join(row_work, f"{name}.log"))
            runs[name].append(m)
            print(f"bench: {r['job']} {r['name']} {name} run {i + 1}/{args.runs}: "
                  f"{m['wall_s']:.2f} s wall, {m['cpu_s']:.2f} s CPU, "
                  f"{m['peak_rss_bytes'] / 2**30:.2f} GiB", file=sys.stderr)
    if args.check:
        outputs = json.dumps({name: out(name) for name in TOOLS})
        agreement = json.loads(in_child("--internal-check", row_id, "--outputs", outputs))
    else:
        agreement = None
    med = benchlib.medians(runs)
    ours = med["emrship-job"]
    fastest = min((t for t in TOOLS if t != "emrship-job"), key=lambda t: med[t]["wall_s"])
    wall_ratio = med[fastest]["wall_s"] / ours["wall_s"]
    lowest_peer_rss = min(med[t]["peak_rss_bytes"] for t in TOOLS if t != "emrship-job")
    result = {
        "row": r, "events": n, "data": root, "agreement": agreement, "runs": runs,
        "medians": med, "fastest_peer": fastest, "wall_ratio": wall_ratio,
        "cpu_ratio": min(med[t]["cpu_s"] for t in TOOLS if t != "emrship-job") / ours["cpu_s"],
        "peak_ratio": lowest_peer_rss / ours["peak_rss_bytes"],
        "speed_target_met": wall_ratio >= TARGET[r["job"]],
        "memory_target_met": ours["peak_rss_bytes"] < lowest_peer_rss,
    }
    if not args.keep:
        shutil.rmtree(os.path.join(row_work, "out"), ignore_errors=True)
    return result


def output_rows(result):
    a = result["agreement"] or {}
    if result["row"]["job"] == "match-rate":
        return a.get("product_rows")
    return a.get("documents")


def markdown(results, args):
    lines = [
        f"| job | row | shape | out rows | emrship-job wall / CPU / peak | DuckDB | Polars "
        f"| fastest peer ÷ ours (wall) | lowest peer peak ÷ ours | targets |",
        "| --- | --- | --- | ---: | --- | --- | --- | ---: | ---: | --- |",
    ]

    def cell(m):
        return f"{m['wall_s']:.2f} s / {m['cpu_s']:.2f} s / {m['peak_rss_bytes'] / 2**30:.2f} GiB"

    for res in results:
        r, med = res["row"], res["medians"]
        rows = output_rows(res)
        target = TARGET[r["job"]]
        marks = (f"{'✓' if res['speed_target_met'] else '✗'} ≥{target}× "
                 f"{'✓' if res['memory_target_met'] else '✗'} mem")
        lines.append(
            f"| {r['job']} | {r['name']} | {shape_text(r)} | "
            f"{'?' if rows is None else f'{rows:,}'} | {cell(med['emrship-job'])} | "
            f"{cell(med['duckdb'])} | {cell(med['polars'])} | {res['wall_ratio']:.2f}× | "
            f"{res['peak_ratio']:.2f}× | {marks} |"
        )
    met = sum(1 for r in results if r["speed_target_met"] and r["memory_target_met"])
    lines.append("")
    lines.append(f"{met} of {len(results)} rows meet both targets; {args.threads} threads, "
                 f"{args.runs} run(s) each, medians; events per row: {args.events:,}.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emrship-job")
    parser.add_argument("--internal-generate", metavar="JOB:NAME", help=argparse.SUPPRESS)
    parser.add_argument("--internal-check", metavar="JOB:NAME", help=argparse.SUPPRESS)
    parser.add_argument("--outputs", help=argparse.SUPPRESS)
    parser.add_argument("--internal-versions", metavar="EMRSHIP_JOB", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", default="",
                        help="comma-separated filters: JOB, NAME or JOB:NAME (default: all)")
    parser.add_argument("--data", default=os.path.expanduser("~/.cache/emrship-bench/matrix"))
    parser.add_argument("--work")
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    parser.add_argument("--no-check", dest="check", action="store_false")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    by_id = {f"{r['job']}:{r['name']}": r for r in ROWS}
    if args.internal_generate:
        print(generate(by_id[args.internal_generate], args.events, args.data))
        return
    if args.internal_check:
        result = check(by_id[args.internal_check], json.loads(args.outputs))
        print(json.dumps(result, default=int))
        return
    if args.internal_versions:
        args.emrship_job = args.internal_versions
        print(json.dumps(match_rate_bench.versions(args)))
        return
    if not args.emrship_job:
        raise SystemExit("bench: --emrship-job is required")

    wanted = [w for w in args.rows.split(",") if w]

    def selected(r):
        return not wanted or any(
            w in (r["job"], r["name"], f"{r['job']}:{r['name']}") for w in wanted
        )

    rows = [r for r in ROWS if selected(r)]
    if not rows:
        raise SystemExit(f"bench: --rows {args.rows!r} selects no row")
    work = args.work or tempfile.mkdtemp(prefix="emrship-matrix-")
    print(f"bench: work directory (logs, outputs): {work}", file=sys.stderr)
    results = []
    for r in rows:
        results.append(run_row(r, args.events, args, work))
        print(markdown(results[-1:], args).splitlines()[2], file=sys.stderr)
    table = markdown(results, args)
    print(table)
    document = {
        "events": args.events, "threads": args.threads, "runs": args.runs,
        "cores": os.cpu_count(), "targets": TARGET, "rows": results,
        "versions": json.loads(in_child("--internal-versions", args.emrship_job)),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)
        print(f"bench: results in {args.json}", file=sys.stderr)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
