#!/usr/bin/env python3
"""Counting consumer: read stdin to the end; count events (lines ending in "}\\n"; the filter's whitespace
padding lines end in " \\n" and are not counted) and bytes. usage: count.py REPORT_PATH"""
import json
import os
import sys


def main() -> None:
    events = 0
    total = 0
    last = b""
    fd = sys.stdin.fileno()
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        total += len(chunk)
        events += chunk.count(b"}\n")
        if last == b"}" and chunk[:1] == b"\n":
            events += 1
        last = chunk[-1:]
    with open(sys.argv[1], "w") as f:
        json.dump({"events": events, "bytes": total}, f)


main()
