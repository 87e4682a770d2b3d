"""Shared bits of the offline packaging checks (tests/packaging/check_*.py).

Each check script records named checks with `Checks.ok(cond, what)`, prints
every failure with its reason, and ends with the line "N passed, N failed"
(exit 1 when any failed). No network is used: everything is read from the
repository, the built binary and the machine's dpkg database.
"""
import argparse
import os
import re
import subprocess
import sys


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def ok(self, cond, what, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {self.name}: {what}" + (f": {detail}" if detail else ""), flush=True)
        return bool(cond)

    def note(self, text):
        print(f"note {self.name}: {text}", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="the repository's root")
    ap.add_argument("--binary", required=True, help="the built patterngate")
    return ap.parse_args()


def project_version(source):
    text = open(os.path.join(source, "CMakeLists.txt")).read()
    m = re.search(r"project\(patterngate VERSION ([0-9.]+)", text)
    return m.group(1) if m else None


def pg_check(binary, config, env=None):
    """Runs `patterngate --check -c config`: (exit code, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.pop("PATTERNGATE_CONFIG", None)
    full_env.update(env or {})
    p = subprocess.run([binary, "--check", "-c", config], env=full_env,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def hostport_port(text):
    """The port of "host:port" / "[v6]:port", or None."""
    m = re.match(r"^(?:\[[^\]]*\]|[^:]*):(\d+)$", text)
    return int(m.group(1)) if m else None


def env_refs(text):
    """${NAME} references without a default, and all names, in a config text."""
    required, names = set(), set()
    for m in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}", text):
        names.add(m.group(1))
        if m.group(2) is None:
            required.add(m.group(1))
    return required, names


def admin_paths(source):
    """The paths the admin API serves, read from gateway/admin.c."""
    text = open(os.path.join(source, "gateway", "admin.c")).read()
    return set(re.findall(r'"(/(?:healthz|readyz|status|metrics))"', text))
