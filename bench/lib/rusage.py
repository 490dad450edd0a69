#!/usr/bin/env python3
"""Run a pipeline of commands into an optional counting consumer; report wall time and per-process rusage.

usage: rusage.py REPORT_PATH SPEC_PATH
  SPEC_PATH holds JSON: {"stdin": PATH|null, "stages": [[argv...], ...], "consumer": [argv...]|null, "env": {...}|null}
  Stage i's stdout feeds stage i+1's stdin through a kernel pipe; the last stage feeds the consumer (or
  /dev/null when there is none). stdin of the first stage is PATH (or /dev/null); stderr is inherited.
  Every process is reaped with os.wait4, whose rusage gives ru_maxrss (KiB on Linux) of that process and of
  the descendants it waited for.
Writes {"elapsed": s, "stages": [...], "consumer": {...}|null} to REPORT_PATH; elapsed runs from the first
spawn until every stage has exited and the consumer has read everything.
"""
import json
import os
import subprocess
import sys
import time


def main() -> int:
    report_path = sys.argv[1]
    with open(sys.argv[2]) as f:
        spec = json.load(f)
    env = dict(os.environ)
    env.update(spec.get("env") or {})
    stdin = open(spec["stdin"], "rb") if spec.get("stdin") else subprocess.DEVNULL
    procs = []
    stages = spec["stages"]
    consumer = spec.get("consumer")
    cons = None
    data_r = data_w = None
    if consumer:
        # The consumer starts first and says when it is ready, so the clock measures the contenders, not the
        # interpreter start-up of the counting reader (on a 2-core machine it would compete with the fastest one).
        data_r, data_w = os.pipe()
        ready_r, ready_w = os.pipe()
        cons = subprocess.Popen(consumer + [str(ready_w)], stdin=data_r, env=env, pass_fds=(ready_w,))
        os.close(data_r)
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
    t0 = time.monotonic()
    prev = stdin
    for i, argv in enumerate(stages):
        last = i == len(stages) - 1
        if last:
            out = data_w if consumer else subprocess.DEVNULL
        else:
            out = subprocess.PIPE
        p = subprocess.Popen(argv, stdin=prev, stdout=out, env=env, cwd=spec.get("cwd"))
        if prev is not stdin:
            prev.close()  # only the next stage keeps the read end
        prev = p.stdout
        procs.append(p)
    if data_w is not None:
        os.close(data_w)  # only the last stage keeps the write end
    if stdin is not subprocess.DEVNULL:
        stdin.close()
    results = {}
    for p in procs + ([cons] if cons else []):
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from reaping it again
        results[p.pid] = {"argv0": os.path.basename(p.args[0]), "rc": p.returncode,
                          "maxrss_kb": ru.ru_maxrss, "utime": ru.ru_utime, "stime": ru.ru_stime}
    elapsed = time.monotonic() - t0
    report = {"elapsed": elapsed, "stages": [results[p.pid] for p in procs],
              "consumer": results[cons.pid] if cons else None}
    with open(report_path, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
