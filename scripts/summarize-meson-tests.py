#!/usr/bin/env python3
"""Counts the test cases of one meson test run for run-tests.sh.

A harness program reports its own "N passed, N failed" line; any other test counts as one
case, passed or failed by meson's verdict; a skipped one (meson's exit status 77) not at all. Prints "<passed> <failed> <label>".
"""
import json
import re
import sys

label, log_path = sys.argv[1], sys.argv[2]
summary = re.compile(r"^(\d+) passed, (\d+) failed(?:, \d+ skipped)?$", re.M)
passed = failed = 0
with open(log_path) as log:
    for line in log:
        entry = json.loads(line)
        if entry["result"] == "SKIP":
            continue  # it said why (a test dependency this machine lacks)
        ok = entry["result"] == "OK"
        match = None
        for match in summary.finditer(entry.get("stdout") or ""):
            pass
        if match:
            passed += int(match.group(1))
            failed += int(match.group(2))
            if not ok and int(match.group(2)) == 0:
                failed += 1  # the program failed in a way its own count did not show
        elif ok:
            passed += 1
        else:
            failed += 1
print(passed, failed, label)
