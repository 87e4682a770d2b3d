#!/usr/bin/env python3
"""Runs the tutorial in README.md as a test, so the README cannot drift.

usage: readme_doctest.py README BINARY_DIR

The tutorial is the part of README between `<!-- tutorial:begin -->` and
`<!-- tutorial:end -->`. In its ```console blocks a line starting with `$ `
is a command (a heredoc continues it up to its terminator); the lines after
it, up to the next command or the block's end, are the output it must
print. In expected output a line `...` stands for any number of lines, and
`...` inside a line for any text. The commands run in order in one bash
process at the repository root (so `&` jobs live on).

The README shows what a reader types, with the defaults (ports 3000 and
8080, files in /tmp). So that the test can run anywhere, next to a running
demo or other tests, and leaves nothing behind, each command and its
expected output are rewritten before they run:
  - `build/release/patterngate` becomes BINARY_DIR/patterngate (the build
    under test);
  - the ports 3000 and 8080, where written `:3000` / `=3000` (and the same
    for 8080), become two ports that were free on 127.0.0.1 just before;
  - `/tmp/` becomes a fresh temporary folder, removed after a pass.
Waits are bounded: a tutorial loop must be bounded in the README itself
(`for i in $(seq N)`, or `timeout`), each step may take at most
STEP_TIMEOUT_S and the whole tutorial TOTAL_TIMEOUT_S; past that everything
the tutorial started is killed. Jobs still running at the end are killed.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BEGIN, END = "<!-- tutorial:begin -->", "<!-- tutorial:end -->"
STEP_TIMEOUT_S = 60
TOTAL_TIMEOUT_S = 300
DEFAULT_PORTS = ("3000", "8080")
SERVICE_DIR = "examples/nest-service"


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


def check_bounded(steps):
    """A loop that waits for something must say how long it may wait."""
    for command, _ in steps:
        first = command.split("\n")[0]
        if re.search(r"\b(until|while)\b", first) and not first.startswith("timeout "):
            sys.exit(f"tutorial: unbounded loop (use `for i in $(seq N)` or `timeout`): {first}")


def free_ports(count):
    """Ports free on 127.0.0.1 right now, all different."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [str(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def rewriter(bindir, work, ports):
    mapping = dict(zip(DEFAULT_PORTS, ports))
    port_re = re.compile(r"(?<=[:=])(" + "|".join(DEFAULT_PORTS) + r")\b")

    def rewrite(text):
        text = text.replace("build/release/patterngate", f"{bindir}/patterngate")
        text = text.replace("/tmp/", f"{work}/")
        return port_re.sub(lambda m: mapping[m.group(1)], text)

    return rewrite


def line_regex(expected):
    return re.compile("^" + ".*".join(re.escape(p) for p in expected.split("...")) + "$")


def matches(expected, actual):
    """expected lines (with `...`) against actual lines, by backtracking."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and line_regex(expected[0]).match(actual[0]) is not None and matches(expected[1:], actual[1:])


def run_script(path, work, count):
    """Runs the script in its own process group; kills the group when a step
    or the whole exceeds its time. Returns a note on a timeout, else None."""
    proc = subprocess.Popen(["bash", path], start_new_session=True)
    started = step_started = time.monotonic()
    done = 0
    note = None
    while proc.poll() is None:
        time.sleep(0.1)
        while done < count and os.path.exists(f"{work}/rc.{done}"):
            done += 1
            step_started = time.monotonic()
        now = time.monotonic()
        if now - step_started > STEP_TIMEOUT_S:
            note = f"step {done + 1} took more than {STEP_TIMEOUT_S} s"
        elif now - started > TOTAL_TIMEOUT_S:
            note = f"the tutorial took more than {TOTAL_TIMEOUT_S} s"
        if note:
            break
    # Whatever is left of the group (jobs of a killed script): TERM, then KILL.
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    proc.wait()
    return note


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    readme, bindir = sys.argv[1], os.path.abspath(sys.argv[2])
    root = os.path.dirname(os.path.abspath(readme))
    steps = parse(readme)
    if not steps:
        sys.exit("tutorial: no commands found")
    check_bounded(steps)
    if not os.path.isdir(os.path.join(root, SERVICE_DIR, "node_modules")):
        sys.exit(f"tutorial: {SERVICE_DIR}/node_modules is missing: run scripts/setup (or scripts/demo)")
    work = tempfile.mkdtemp(prefix="pg-tutorial-")
    ports = free_ports(len(DEFAULT_PORTS))
    rewrite = rewriter(bindir, work, ports)
    steps = [(rewrite(command), [rewrite(line) for line in expected]) for command, expected in steps]
    print(f"tutorial: ports {', '.join(f'{d} -> {p}' for d, p in zip(DEFAULT_PORTS, ports))}, /tmp -> {work}")
    script = ["set -u", f"cd {root!r}", "trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT"]
    for n, (command, _) in enumerate(steps):
        script.append("{ " + command + "\n} >" + f"{work}/out.{n} 2>&1; echo $? >{work}/rc.{n}")
    path = os.path.join(work, "tutorial.sh")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(script) + "\n")
    note = run_script(path, work, len(steps))
    if note:
        print(f"tutorial: stopped: {note}", file=sys.stderr)
    failures = 0
    for n, (command, expected) in enumerate(steps):
        first = command.split("\n")[0]
        try:
            actual = open(f"{work}/out.{n}", encoding="utf-8", errors="replace").read().split("\n")
            rc = open(f"{work}/rc.{n}").read().strip()
        except FileNotFoundError:
            print(f"FAIL step {n + 1}: `{first}` did not run to its end")
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
    if failures or note:
        for log in sorted(os.listdir(work)):
            if log.endswith(".log"):
                print(f"--- {work}/{log}:\n" + open(os.path.join(work, log), errors="replace").read()[-3000:])
        sys.exit(f"tutorial: {failures} of {len(steps)} steps failed (files kept in {work})")
    shutil.rmtree(work, ignore_errors=True)
    print(f"tutorial: all {len(steps)} steps passed")


if __name__ == "__main__":
    main()
