#!/usr/bin/env python3
"""Runs the tutorial in README.md as a test, so the README cannot drift.

usage: readme_doctest.py README BINARY_DIR

The tutorial is the part of README between `<!-- tutorial:begin -->` and
`<!-- tutorial:end -->`. In its ```console blocks a line starting with `$ `
is a command (a heredoc continues it up to its terminator); the lines after
it, up to the next command or the block's end, are the output it must
print. In expected output a line `...` stands for any number of lines, and
`...` inside a line for any text. The commands run in order in one bash
process at the repository root (so `&` jobs live on), with
`build/release/patterngate` replaced by BINARY_DIR/patterngate (the build
under test). Jobs still running at the end are killed.
"""
import os
import re
import subprocess
import sys
import tempfile

BEGIN, END = "<!-- tutorial:begin -->", "<!-- tutorial:end -->"


def parse(readme):
    text = open(readme, encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        sys.exit(f"{readme}: no tutorial markers")
    region = text.split(BEGIN, 1)[1].split(END, 1)[0]
    steps = []  # (command, expected lines)
    for block in re.findall(r"```console\n(.*?)```", region, re.S):
        lines = block.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line.startswith("$ "):
                sys.exit(f"tutorial: output before any command: {line!r}")
            command = [line[2:]]
            i += 1
            heredoc = re.search(r"<<'?(\w+)'?", line)
            if heredoc:
                end = heredoc.group(1)
                while i < len(lines) and lines[i] != end:
                    command.append(lines[i])
                    i += 1
                command.append(end)
                i += 1
            expected = []
            while i < len(lines) and not lines[i].startswith("$ "):
                expected.append(lines[i])
                i += 1
            steps.append(("\n".join(command), expected))
    return steps


def line_regex(expected):
    return re.compile("^" + ".*".join(re.escape(p) for p in expected.split("...")) + "$")


def matches(expected, actual):
    """expected lines (with `...`) against actual lines, by backtracking."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and line_regex(expected[0]).match(actual[0]) is not None and matches(expected[1:], actual[1:])


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    readme, bindir = sys.argv[1], os.path.abspath(sys.argv[2])
    root = os.path.dirname(os.path.abspath(readme))
    steps = parse(readme)
    if not steps:
        sys.exit("tutorial: no commands found")
    work = tempfile.mkdtemp(prefix="pg-tutorial-")
    script = ["set -u", f"cd {root!r}", "trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT"]
    for n, (command, _) in enumerate(steps):
        command = command.replace("build/release/patterngate", f"{bindir}/patterngate")
        script.append("{ " + command + "\n} >" + f"{work}/out.{n} 2>&1; echo $? >{work}/rc.{n}")
    path = os.path.join(work, "tutorial.sh")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(script) + "\n")
    try:
        subprocess.run(["bash", path], timeout=300, check=False)
    except subprocess.TimeoutExpired:
        print("tutorial: timed out after 300 s", file=sys.stderr)
    failures = 0
    for n, (command, expected) in enumerate(steps):
        first = command.split("\n")[0]
        try:
            actual = open(f"{work}/out.{n}", encoding="utf-8", errors="replace").read().split("\n")
            rc = open(f"{work}/rc.{n}").read().strip()
        except FileNotFoundError:
            print(f"FAIL step {n + 1}: `{first}` did not run")
            failures += 1
            continue
        if actual and actual[-1] == "":
            actual.pop()
        if rc != "0" or not matches(expected, actual):
            failures += 1
            print(f"FAIL step {n + 1}: `{first}` (exit {rc})")
            print("  expected:\n" + "\n".join("    " + l for l in expected))
            print("  got:\n" + "\n".join("    " + l for l in actual))
        else:
            print(f"ok   step {n + 1}: {first}")
    if failures:
        for log in ("/tmp/orders.log", "/tmp/patterngate.log"):
            if os.path.exists(log):
                print(f"--- {log}:\n" + open(log, errors="replace").read()[-3000:])
        sys.exit(f"tutorial: {failures} of {len(steps)} steps failed")
    print(f"tutorial: all {len(steps)} steps passed")


if __name__ == "__main__":
    main()
