#!/usr/bin/env python3
"""Counting consumer: read stdin to the end; count events and bytes. usage: count.py REPORT_PATH [READY_FD]

Every contender writes one line per event, ending in "}\\n"; the filter also writes whitespace padding lines (spaces
ending in "\\n", 8 KiB by default) after bursts. events = newlines - padding lines. Counting one byte value runs at
memchr speed, while counting the pair "}\\n" took twice the CPU (0.13-0.14 against 0.06-0.08 CPU-s per 100 MB). The
consumer shares the machine's cores with the contender, and only the filter keeps both busy, so its cost weighs on
the filter alone: it is kept as light as an exact count allows. Padding lines (" \\n") are counted only in a read
that holds a run of 64 spaces or starts inside a run of spaces (a few reads per padding line; an event holding such a
run only costs that read a slower, still exact, count). Exact for padding of 64 bytes and more (the default is 8192)."""
import json
import os
import sys

SPACES = b" " * 64  # shorter padding lines (--pad-bytes below 65) would be counted as events


def main() -> None:
    events = 0
    total = 0
    last = -1
    fd = sys.stdin.fileno()
    if len(sys.argv) > 2:  # a readiness pipe: say we are up before the clock starts
        os.write(int(sys.argv[2]), b"r")
        os.close(int(sys.argv[2]))
    buf = bytearray(1 << 20)  # read into one buffer: no allocation per read, so the reader costs little CPU
    while True:
        n = os.readv(fd, [buf])
        if not n:
            break
        total += n
        lines = buf.count(b"\n", 0, n)
        if lines:
            padding = 1 if last == 0x20 and buf[0] == 0x0A else 0  # a padding line cut between two reads
            if buf[0] == 0x20 or buf.find(SPACES, 0, n) != -1:
                padding += buf.count(b" \n", 0, n)
            events += lines - padding
        last = buf[n - 1]
    with open(sys.argv[1], "w") as f:
        json.dump({"events": events, "bytes": total}, f)


main()
