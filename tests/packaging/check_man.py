#!/usr/bin/env python3
"""The man pages against the programs and the sources: every long option a program's --help
lists, and every environment variable the sources read, is in its man page; and man(1) renders
each page without a warning.

    check_man.py MAN_DIR SOURCE_ROOT PROGRAM=PAGE...
"""
import pathlib
import re
import subprocess
import sys

man_dir = pathlib.Path(sys.argv[1])
source_root = pathlib.Path(sys.argv[2])
failures = []

for pair in sys.argv[3:]:
    program, page = pair.split("=", 1)
    text = (man_dir / page).read_text()
    usage = subprocess.run([program, "--help"], capture_output=True, text=True, check=True).stdout
    options = sorted(set(re.findall(r"--([a-z][a-z-]+)", usage)))
    if not options:
        failures.append(f"{program} --help lists no options")
    missing = [o for o in options if f"\\-\\-{o.replace('-', chr(92) + '-')}" not in text]
    for option in missing:
        failures.append(f"{page}: --{option} (from {pathlib.Path(program).name} --help) is missing")
    print(f"{page}: {len(options) - len(missing)} of {len(options)} options documented")

# Every variable the sources read is in one of the pages.
pages = "".join(p.read_text() for p in man_dir.glob("*.[1-9]"))
variables = set()
for source in list(source_root.glob("src/**/*.c")) + list(source_root.glob("guest/*.c")):
    variables |= set(re.findall(r'getenv\("([A-Z_]+)"\)', source.read_text()))
for variable in sorted(variables):
    if variable.replace("_", "\\_") not in pages and variable not in pages:
        failures.append(f"environment variable {variable} is read but in no man page")
print(f"environment variables read by the sources: {', '.join(sorted(variables))}")

for page in sorted(man_dir.glob("*.[1-9]")):
    result = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(page)],
                            capture_output=True, text=True, env={"MANWIDTH": "80", "LC_ALL": "C.UTF-8",
                                                                 "PATH": "/usr/bin:/bin"})
    if result.returncode != 0 or result.stderr.strip():
        failures.append(f"man --warnings {page.name}: {result.stderr.strip() or result.returncode}")

for failure in failures:
    print("FAIL:", failure)
sys.exit(1 if failures else 0)
