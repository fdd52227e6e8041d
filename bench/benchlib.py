"""Shared by the benchmarks (rollup_bench.py, match_rate_bench.py): how a tool's whole process is
timed, how the inputs are warmed, and how the runs are reduced to medians."""

import os
import statistics
import subprocess
import time


def measure(cmd, env=None, log=None):
    """Runs `cmd` to completion; wall seconds, CPU seconds (user+sys) and peak RSS bytes of the
    process and every descendant it waited for (os.wait4: Linux folds reaped children into the
    rusage, and their peak into ru_maxrss)."""
    started = time.monotonic()
    with open(log or os.devnull, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = ""
        if log and os.path.exists(log):
            with open(log, "rb") as f:
                tail = f.read()[-3000:].decode(errors="replace")
        raise SystemExit(f"bench: `{' '.join(cmd)}` exited {code}\n{tail}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
    }


def warm(paths):
    """Reads every input file under `paths` once, so each tool starts on a warm page cache."""
    for root in paths:
        for d, _, files in os.walk(root):
            for name in files:
                with open(os.path.join(d, name), "rb") as f:
                    while f.read(1 << 24):
                        pass


def medians(runs):
    """{name: [measurement, ...]} -> {name: {key: median over the runs, "runs": count}}."""
    result = {}
    for name, ms in runs.items():
        result[name] = {k: statistics.median(m[k] for m in ms) for k in ms[0]}
        result[name]["runs"] = len(ms)
    return result
