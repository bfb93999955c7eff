#!/usr/bin/env python3
"""Renames the JIT's methods in a callgrind dump: callgrind names code without symbols by its address (fn=0x…);
the .NET runtime's perf map (DOTNET_PerfMapEnabled=1: /tmp/perf-PID.map, "start size name" in hex) says which method
each address belongs to. Usage: callgrind-jit.py PERF_MAP < callgrind.out > callgrind.named.out"""
import bisect
import re
import sys

starts, ends, names = [], [], []
try:
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        rows = []
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) == 3:
                rows.append((int(parts[0], 16), int(parts[1], 16), parts[2]))
        rows.sort()
        for start, size, name in rows:
            starts.append(start)
            ends.append(start + size)
            names.append(name)
except FileNotFoundError:
    pass


def resolve(text):
    m = re.fullmatch(r"0x([0-9a-fA-F]+)", text.strip())
    if not m:
        return text
    addr = int(m.group(1), 16)
    i = bisect.bisect_right(starts, addr) - 1
    if i >= 0 and addr < ends[i]:
        return "[jit] " + names[i]
    return text


# fn=, cfn= (and cfi/fi are files): "fn=(id) name" defines a name, "fn=(id)" refers to one
pattern = re.compile(r"^(c?fn=)(\(\d+\) )?(.*)$")
for line in sys.stdin:
    m = pattern.match(line)
    if m and m.group(3):
        sys.stdout.write(m.group(1) + (m.group(2) or "") + resolve(m.group(3)) + "\n")
    else:
        sys.stdout.write(line)
