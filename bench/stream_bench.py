#!/usr/bin/env python3
"""The stream benchmark (run through scripts/bench-stream.sh; not a test, CI never runs it).

Two parts:

- `throughput`: decode-and-aggregate per core. The same generated page-view records
  (`emrship-job gen stream --copy`, one JSON record per line) go through
  * emrship-job's stream path without Kinesis (`emrship-job stream-file`: ranges of 50,000
    records decoded, aggregated per 5-minute window, serialized as the worker stores them, then
    every window's documents), one thread;
  * PySpark Structured Streaming, as EMR 7.x ships it (3.5), local[2]: a file source over the
    same records (JSON, schema given), `withWatermark("ts", "1 minute")`,
    `groupBy(window(ts, "5 minutes"), customer, url)` with count, collect_set(session_id) and
    collect_list(referrer), append mode into the file sink (Spark's exactly-once sink), with
    Trigger.AvailableNow; a last record far in the future moves the watermark past every
    window so that append mode emits them all (it is dropped from the output).
  Both outputs are turned into the rollup's documents and must be equal. Reported: records per
  CPU-second (user+sys of the whole process, JVM included for Spark), and per wall-second per
  core used.
- `latency`: through moto (Kinesis, DynamoDB, S3) on loopback: one worker as on a cluster
  (no stop rule, 1-minute windows, 2 s lateness, 1 s flushes), records put with ts = now at a
  steady rate; per record, the time from its PutRecords answer to the first range object
  holding its sequence number; per window, the time from its end plus the lateness to its
  final object. Bound by the emulator: moto serves GetRecords and S3 from one Python process.
"""

import argparse
import collections
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import benchlib

SCHEMA = "customer STRING, url STRING, referrer STRING, session_id STRING, ts TIMESTAMP"


def documents_from_rust(out_dir):
    docs = {}
    for name in sorted(os.listdir(os.path.join(out_dir, "windows"))):
        with open(os.path.join(out_dir, "windows", name)) as f:
            for line in f:
                doc = json.loads(line)
                docs[doc["_id"]] = doc
    return docs


def documents_from_spark(out_dir, freq):
    docs = {}
    for root, _, files in os.walk(out_dir):
        if "_spark_metadata" in root:
            continue
        for name in files:
            if not name.startswith("part-"):
                continue
            with open(os.path.join(root, name)) as f:
                for line in f:
                    row = json.loads(line)
                    start = row["window"]["start"]
                    ts = dt.datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(
                        dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
                    if ts.startswith("2100"):
                        continue  # the watermark's sentinel
                    referrers = collections.Counter(r for r in row.get("referrers", []) if r)
                    doc = {
                        "_id": f"{row['url']}|{row['customer']}|{ts}",
                        "customer": row["customer"],
                        "url": row["url"],
                        "ts": ts,
                        "freq": freq,
                        "metrics": {"page_views": row["page_views"],
                                    "visitors": len(row["sessions"])},
                        "referrers": dict(sorted(referrers.items())),
                    }
                    docs[doc["_id"]] = doc
    return docs


def spark_peer(args):
    """PySpark Structured Streaming over a directory of JSON Lines files."""
    from pyspark.sql import SparkSession, functions as F

    spark = (SparkSession.builder.appName("stream-bench")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    started = time.monotonic()
    events = (spark.readStream.schema(SCHEMA).json(args.input)
              .withWatermark("ts", "1 minute"))
    windows = (events.groupBy(F.window("ts", "5 minutes"), "customer", "url")
               .agg(F.count(F.lit(1)).alias("page_views"),
                    F.collect_set("session_id").alias("sessions"),
                    F.collect_list("referrer").alias("referrers")))
    query = (windows.writeStream.format("json").outputMode("append")
             .option("checkpointLocation", args.checkpoint)
             .option("path", args.output)
             .trigger(availableNow=True).start())
    query.awaitTermination()
    print(json.dumps({"query_s": time.monotonic() - started}))
    spark.stop()


def python_records(path, n, seed=7):
    """Records another producer might write, from a generator that is not ours: Python's json
    with spaces and another key order, 36-character UUID sessions (200,000), long urls (100,000
    per site over 50 sites), 50 referrers and 20 % direct, and `ts` with an offset, out of order
    by up to 30 s (within the lateness, so neither tool drops any)."""
    import random
    import uuid

    rnd = random.Random(seed)
    sessions = [str(uuid.UUID(int=rnd.getrandbits(128))) for _ in range(200_000)]
    start = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    with open(path, "w") as out:
        for i in range(n):
            site = f"news-site-{rnd.randrange(50):02d}.example.com"
            ts = start + dt.timedelta(seconds=3600 * i / n + rnd.uniform(-30, 30))
            record = {
                "ts": ts.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat(),
                "session_id": sessions[int(rnd.paretovariate(1.2)) % len(sessions)],
                "url": f"https://{site}/section-{rnd.randrange(20)}/2026/11/"
                       f"article-with-a-long-descriptive-slug-{int(rnd.paretovariate(1.1)) % 100_000}",
                "referrer": None if rnd.random() < 0.2 else f"https://ref-{rnd.randrange(50)}.example/",
                "customer": site,
            }
            out.write(json.dumps(record) + "\n")


def throughput(args):
    work = args.work
    records = os.path.join(work, "records.jsonl")
    if not os.path.exists(records):
        if args.variant == "python-high-cardinality":
            python_records(records, args.records)
        else:
            subprocess.run([args.job, "gen", "stream", "--records", str(args.records),
                            "--copy", records], check=True)
    # Spark's file source reads a directory: the same lines in 8 files, and the sentinel.
    spark_in = os.path.join(work, "spark-in")
    if not os.path.isdir(spark_in):
        os.makedirs(spark_in)
        with open(records) as f:
            lines = f.readlines()
        step = (len(lines) + 7) // 8
        for i in range(8):
            with open(os.path.join(spark_in, f"part-{i}.json"), "w") as out:
                out.writelines(lines[i * step:(i + 1) * step])
        with open(os.path.join(spark_in, "part-9-sentinel.json"), "w") as out:
            out.write('{"customer":"x","url":"x","referrer":null,"session_id":"x",'
                      '"ts":"2100-01-01T00:00:00Z"}\n')
    benchlib.warm([records])
    rows = []
    for run in range(args.runs):
        out = os.path.join(work, f"rust-{run}")
        shutil.rmtree(out, ignore_errors=True)
        m = benchlib.measure([args.job, "stream-file", "--input", records, "--output", out,
                              "--window", "5m", "--lateness", "1m", "--format", "json"],
                             log=os.path.join(work, "rust.log"))
        rows.append(("emrship-job", run, m, out))
    for run in range(args.spark_runs):
        out = os.path.join(work, f"spark-{run}")
        check = os.path.join(work, f"spark-checkpoint-{run}")
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(check, ignore_errors=True)
        # Through spark-submit, whose java is the measured process: the JVM and the Python
        # workers it reaps count in its CPU time (a plain `python script.py` would leave the
        # JVM it launches unaccounted).
        spark_submit = os.path.join(os.path.dirname(args.spark_python), "spark-submit")
        spark_home = subprocess.run(
            [args.spark_python, "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
            check=True, capture_output=True, text=True).stdout.strip()
        env = dict(os.environ, SPARK_HOME=spark_home, PYSPARK_PYTHON=args.spark_python,
                   PYSPARK_DRIVER_PYTHON=args.spark_python)
        m = benchlib.measure([spark_submit, "--master", "local[2]",
                              "--driver-memory", args.driver_memory, __file__, "spark",
                              "--input", spark_in, "--output", out, "--checkpoint", check,
                              "--driver-memory", args.driver_memory],
                             env=env, log=os.path.join(work, "spark.log"))
        rows.append(("pyspark-structured-streaming", run, m, out))
    rust_docs = documents_from_rust(rows[0][3])
    spark_docs = documents_from_spark(rows[-1][3], "5min")
    if rust_docs != spark_docs:
        only_rust = sorted(set(rust_docs) - set(spark_docs))[:3]
        only_spark = sorted(set(spark_docs) - set(rust_docs))[:3]
        differ = [k for k in rust_docs if k in spark_docs and rust_docs[k] != spark_docs[k]][:3]
        raise SystemExit(f"bench: outputs differ: only emrship {only_rust}, only spark "
                         f"{only_spark}, different {differ}")
    result = {"records": args.records, "variant": args.variant, "documents": len(rust_docs),
              "tools": {}}
    for tool in ["emrship-job", "pyspark-structured-streaming"]:
        runs = [m for t, _, m, _ in rows if t == tool]
        med = benchlib.medians({tool: runs})[tool]
        cores = 1 if tool == "emrship-job" else 2
        med["records_per_cpu_s"] = args.records / med["cpu_s"]
        med["records_per_core_wall_s"] = args.records / (med["wall_s"] * cores)
        result["tools"][tool] = med
    r, s = result["tools"]["emrship-job"], result["tools"]["pyspark-structured-streaming"]
    result["ratio_per_cpu_s"] = r["records_per_cpu_s"] / s["records_per_cpu_s"]
    result["ratio_per_core_wall_s"] = r["records_per_core_wall_s"] / s["records_per_core_wall_s"]
    return result


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def latency(args):
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    moto = subprocess.Popen([args.moto_python, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        session = boto3.session.Session(aws_access_key_id="testing",
                                        aws_secret_access_key="testing",
                                        region_name="us-east-1")
        kinesis = session.client("kinesis", endpoint_url=endpoint)
        s3 = session.client("s3", endpoint_url=endpoint)
        kinesis.create_stream(StreamName="latency", ShardCount=2)
        s3.create_bucket(Bucket="latency")
        worker = subprocess.Popen(
            [args.job, "stream", "--stream", "latency", "--output", "s3://latency/w/",
             "--lease-table", "latency-leases", "--window", "1m", "--lateness", "2s",
             "--poll-interval", "200ms", "--flush-interval", "1s", "--failover", "3s"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(args.work, "latency.log"), "w"))
        put_at = {}  # (shard, seq) -> put time
        stop = threading.Event()

        def producer():
            i = 0
            while not stop.is_set():
                now = dt.datetime.now(dt.timezone.utc)
                batch = [{"Data": json.dumps({"customer": "c", "url": f"/a/{i % 50}",
                                              "referrer": None, "session_id": f"s{i % 900}",
                                              "ts": now.isoformat()}).encode(),
                          "PartitionKey": f"s{i + j}"} for j in range(args.rate // 10)]
                i += len(batch)
                answer = kinesis.put_records(StreamName="latency", Records=batch)
                at = time.monotonic()
                for r in answer["Records"]:
                    put_at[(r["ShardId"], int(r["SequenceNumber"]))] = at
                time.sleep(0.1)

        thread = threading.Thread(target=producer)
        thread.start()
        seen_range = {}
        window_visible = {}
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            listing = s3.list_objects_v2(Bucket="latency", Prefix="w/")
            now = time.monotonic()
            for obj in listing.get("Contents", []):
                key = obj["Key"]
                if key.startswith("w/ranges/") and key not in seen_range:
                    body = json.loads(s3.get_object(Bucket="latency", Key=key)["Body"].read())
                    seen_range[key] = (body["shard"], int(body["from"]), int(body["to"]), now)
                elif key.startswith("w/windows/") and key not in window_visible:
                    window_visible[key] = (dt.datetime.now(dt.timezone.utc), now)
            time.sleep(0.1)
        stop.set()
        thread.join()
        lat = []
        for (shard, seq), at in list(put_at.items()):
            for s, lo, hi, visible in seen_range.values():
                if s == shard and lo <= seq <= hi:
                    lat.append(visible - at)
                    break
        lat.sort()
        windows = []
        for key, (wall, _) in window_visible.items():
            start = dt.datetime.strptime(key.rsplit("/", 1)[1][:-len(".jsonl")],
                                         "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
            closes = start + dt.timedelta(minutes=1, seconds=2)
            windows.append((wall - closes).total_seconds())
        pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
        return {"records_put": len(put_at), "records_in_ranges": len(lat),
                "put_to_range_s": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)},
                "window_close_to_object_s": sorted(windows),
                "rate_per_s": args.rate, "bound_by": "moto (one Python process serving "
                "PutRecords, GetRecords, DynamoDB and S3)"}
    finally:
        if worker:
            worker.terminate()
            worker.wait()
        moto.terminate()
        moto.wait()


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    spark = sub.add_parser("spark")
    spark.add_argument("--input", required=True)
    spark.add_argument("--output", required=True)
    spark.add_argument("--checkpoint", required=True)
    spark.add_argument("--driver-memory", default="4g")
    bench = sub.add_parser("bench")
    bench.add_argument("--job", required=True)
    bench.add_argument("--records", type=int, default=2_000_000)
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--spark-runs", type=int, default=1)
    bench.add_argument("--spark-python", required=True)
    bench.add_argument("--moto-python", required=True)
    bench.add_argument("--driver-memory", default="4g")
    bench.add_argument("--work", required=True)
    bench.add_argument("--rate", type=int, default=500)
    bench.add_argument("--seconds", type=int, default=150)
    bench.add_argument("--parts", default="throughput,latency")
    bench.add_argument("--variant", default="generated",
                       choices=["generated", "python-high-cardinality"])
    bench.add_argument("--json", required=True)
    args = parser.parse_args()
    if args.role == "spark":
        return spark_peer(args)
    os.makedirs(args.work, exist_ok=True)
    result = {}
    if "throughput" in args.parts:
        result["throughput"] = throughput(args)
    if "latency" in args.parts:
        result["latency"] = latency(args)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
