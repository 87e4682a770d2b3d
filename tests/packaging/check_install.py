#!/usr/bin/env python3
"""Builds patterngate from source the way a user without the test tools
would, installs it, packages it as a .deb and checks what comes out.

- Configure: a fresh build dir of the source tree, no build type given, with
  -DPATTERNGATE_TESTS=OFF, cmocka hidden from pkg-config (a PKG_CONFIG_LIBDIR
  holding every .pc file of the system's search path but cmocka's) and node,
  npm and npx shadowed on PATH by stubs that record any call (there must be
  none up to the .deb). The same configure with PATTERNGATE_TESTS=ON must
  fail on cmocka, which proves cmocka really was out of reach. The cache
  says Release and has no CMOCKA entry; no CTestTestfile.cmake is written.
- Build: the only program in the build tree is `patterngate`.
- `cmake --install --prefix TMP/x`: bin/patterngate prints `patterngate
  VERSION` (project()'s); every config/examples/*.json is in
  share/patterngate/examples and `--check -c` says ok on it (the variables
  it requires set); README.md and docs/*.md are in share/doc/patterngate
  (docs under docs/, as README links them); config/patterngate.schema.json
  is in share/patterngate when the source has it.
- `cpack -G DEB`: one patterngate_VERSION_ARCH.deb with Package, Version,
  Architecture, Section, Maintainer and Description; its Depends names
  libmicrohttpd12, libuv1, libjansson4 and libssl3, and the package of
  every library the binary needs (DT_NEEDED, resolved by ldd, owner by
  dpkg -S), so a library added later is checked without editing this file.
  Unpacked with `dpkg-deb -x`: the same files as the install under usr/, and
  the same checks of the binary, examples and docs.

Everything happens in a temporary folder under --work, removed at the end;
every command runs in its own process group with a time limit.
"""
import argparse
import filecmp
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import traceback

from checklib import Checks, env_refs, pg_check, project_version

BUDGET_S = 560          # ctest's TIMEOUT is 600
BUILD_JOBS = "2"
REQUIRED_DEPENDS = ("libmicrohttpd12", "libuv1", "libjansson4", "libssl3")


class Runner:
    """Runs commands within one overall deadline, killing a command's whole
    process group when its own limit or the deadline passes."""

    def __init__(self, budget_s):
        self.deadline = time.monotonic() + budget_s

    def run(self, argv, limit_s, env=None, cwd=None):
        left = self.deadline - time.monotonic()
        limit = max(1.0, min(limit_s, left))
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
            return 124, (out or "") + f"\n[killed after {limit:.0f} s]"
        return p.returncode, out


def tail(text, lines=30):
    return "\n".join(text.splitlines()[-lines:])


def pc_search_path():
    r = subprocess.run(["pkg-config", "--variable", "pc_path", "pkg-config"],
                       capture_output=True, text=True, timeout=30)
    dirs = r.stdout.strip().split(":") if r.returncode == 0 else []
    extra = os.environ.get("PKG_CONFIG_PATH", "")
    return [d for d in extra.split(":") + dirs if d and os.path.isdir(d)]


def hidden_tools_env(tmp):
    """The environment of a user without the test tools: a pkg-config search
    path with every .pc file but cmocka's, and node, npm and npx on PATH
    replaced by stubs that record their call in tmp/node-called and fail.
    Returns (env, the record's path)."""
    pcdir = os.path.join(tmp, "pkgconfig")
    os.mkdir(pcdir)
    for d in pc_search_path():
        for pc in glob.glob(os.path.join(d, "*.pc")):
            name = os.path.basename(pc)
            if name != "cmocka.pc" and not os.path.exists(os.path.join(pcdir, name)):
                os.symlink(pc, os.path.join(pcdir, name))
    stubs = os.path.join(tmp, "stubs")
    os.mkdir(stubs)
    record = os.path.join(tmp, "node-called")
    for tool in ("node", "npm", "npx"):
        path = os.path.join(stubs, tool)
        with open(path, "w") as f:
            f.write(f'#!/bin/sh\necho "{tool} $*" >> "{record}"\nexit 127\n')
        os.chmod(path, 0o755)
    env = dict(os.environ)
    env.pop("PKG_CONFIG_PATH", None)
    env["PKG_CONFIG_LIBDIR"] = pcdir
    env["PATH"] = stubs + ":" + env.get("PATH", "")
    return env, record


def program_files(build):
    """Executable ELF files in a build tree (CMake's own probes left out)."""
    found = []
    for root, dirs, files in os.walk(build):
        dirs[:] = [d for d in dirs if d != "CMakeFiles"]
        for f in files:
            path = os.path.join(root, f)
            if os.access(path, os.X_OK) and not os.path.islink(path):
                with open(path, "rb") as fh:
                    if fh.read(4) == b"\x7fELF":
                        found.append(os.path.relpath(path, build))
    return sorted(found)


def tree_files(top):
    out = set()
    for root, _, files in os.walk(top):
        for f in files:
            out.add(os.path.relpath(os.path.join(root, f), top))
    return out


def check_tree(c, where, prefix, source, version):
    """The installed layout under prefix (TMP/x, or usr/ of the .deb)."""
    binary = os.path.join(prefix, "bin", "patterngate")
    if not c.ok(os.access(binary, os.X_OK), f"{where}: bin/patterngate is executable"):
        return
    r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    c.ok(r.returncode == 0 and r.stdout.strip() == f"patterngate {version}",
         f"{where}: bin/patterngate --version prints 'patterngate {version}'",
         f"exit {r.returncode}: {r.stdout.strip()!r} {r.stderr.strip()!r}")

    examples = sorted(glob.glob(os.path.join(source, "config", "examples", "*.json")))
    c.ok(examples, "the source has config/examples/*.json")
    for src in examples:
        name = os.path.basename(src)
        inst = os.path.join(prefix, "share", "patterngate", "examples", name)
        if not c.ok(os.path.isfile(inst) and filecmp.cmp(src, inst, shallow=False),
                    f"{where}: share/patterngate/examples/{name} is config/examples/{name}"):
            continue
        required, _ = env_refs(open(inst).read())
        code, out, err = pg_check(binary, inst, {n: "x" for n in required})
        c.ok(code == 0 and out.startswith("ok"),
             f"{where}: --check -c share/patterngate/examples/{name} says ok",
             f"exit {code}: {out!r} {err!r}")

    docs = [("README.md", "README.md")]
    docs += [(os.path.join("docs", os.path.basename(p)), os.path.join("docs", os.path.basename(p)))
             for p in sorted(glob.glob(os.path.join(source, "docs", "*.md")))]
    c.ok(len(docs) > 1, "the source has docs/*.md")
    for src_rel, inst_rel in docs:
        inst = os.path.join(prefix, "share", "doc", "patterngate", inst_rel)
        c.ok(os.path.isfile(inst) and filecmp.cmp(os.path.join(source, src_rel), inst, shallow=False),
             f"{where}: share/doc/patterngate/{inst_rel} is {src_rel}")

    schema = os.path.join(source, "config", "patterngate.schema.json")
    inst = os.path.join(prefix, "share", "patterngate", "patterngate.schema.json")
    if os.path.isfile(schema):
        c.ok(os.path.isfile(inst) and filecmp.cmp(schema, inst, shallow=False),
             f"{where}: share/patterngate/patterngate.schema.json is config/patterngate.schema.json")
    else:
        c.ok(not os.path.exists(inst), f"{where}: no schema installed without config/patterngate.schema.json")
        c.note("config/patterngate.schema.json is not in the source: its install is not checked")


def control_fields(deb):
    r = subprocess.run(["dpkg-deb", "-f", deb], capture_output=True, text=True, timeout=60)
    fields, key = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
        if m:
            key = m.group(1)
            fields[key] = m.group(2)
        elif key and line.startswith(" "):
            fields[key] += "\n" + line.strip()
    return fields


def depends_names(depends):
    names = set()
    for alt in re.split(r"[,|]", depends):
        m = re.match(r"\s*([a-z0-9][a-z0-9+.-]+)", alt)
        if m:
            names.add(m.group(1))
    return names


def needed_packages(binary):
    """{soname: package} for each DT_NEEDED of binary, through ldd's paths
    and dpkg -S (the /usr-merged twin of a path tried too)."""
    r = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, timeout=60)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)
    r = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=60)
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", r.stdout, re.M))
    owners = {}
    for so in needed:
        path = paths.get(so)
        owner = None
        if path:
            real = os.path.realpath(path)
            for cand in (path, real, re.sub(r"^/usr/lib/", "/lib/", real), re.sub(r"^/lib/", "/usr/lib/", real)):
                s = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True, timeout=60)
                if s.returncode == 0:
                    owner = s.stdout.split(":")[0].strip()
                    break
        owners[so] = owner
    return owners


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="the repository's root")
    ap.add_argument("--work", required=True, help="where the temporary folder goes")
    ap.add_argument("--cmake", default="cmake")
    ap.add_argument("--cpack", default="cpack")
    args = ap.parse_args()
    source = os.path.abspath(args.source)
    version = project_version(source)
    c = Checks("install")
    c.ok(version, "CMakeLists.txt has project(patterngate VERSION ...)")
    run = Runner(BUDGET_S).run
    started = time.monotonic()

    os.makedirs(args.work, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="check_install.", dir=args.work)
    try:
        env, node_record = hidden_tools_env(tmp)
        r = subprocess.run(["pkg-config", "--exists", "cmocka"], env=env, timeout=30)
        c.ok(r.returncode != 0, "cmocka is out of pkg-config's reach in the test's environment")
        r = subprocess.run(["pkg-config", "--exists", "libuv"], env=env, timeout=30)
        c.ok(r.returncode == 0, "the build's libraries are within pkg-config's reach")

        # The control: the tests' configure needs cmocka, and fails without it.
        code, out = run([args.cmake, "-S", source, "-B", os.path.join(tmp, "with-tests")], 180, env=env)
        c.ok(code != 0 and "cmocka" in out,
             "configure with PATTERNGATE_TESTS=ON fails on the hidden cmocka", tail(out))

        build = os.path.join(tmp, "b")
        code, out = run([args.cmake, "-S", source, "-B", build, "-DPATTERNGATE_TESTS=OFF"], 180, env=env)
        if not c.ok(code == 0, "configure with -DPATTERNGATE_TESTS=OFF, no cmocka, no node", tail(out)):
            return
        cache = open(os.path.join(build, "CMakeCache.txt")).read()
        c.ok(re.search(r"^CMAKE_BUILD_TYPE:\w+=Release$", cache, re.M), "no build type given: Release")
        c.ok("CMOCKA" not in cache.upper(), "the cache has no CMOCKA entry")
        c.ok(not os.path.exists(os.path.join(build, "CTestTestfile.cmake")), "no tests registered")

        t0 = time.monotonic()
        code, out = run([args.cmake, "--build", build, "-j", BUILD_JOBS], 480, env=env)
        if not c.ok(code == 0, "cmake --build", tail(out)):
            return
        c.note(f"build {time.monotonic() - t0:.0f} s")
        progs = program_files(build)
        c.ok(progs == ["patterngate"], "the build makes one program, patterngate", str(progs))

        prefix = os.path.join(tmp, "x")
        code, out = run([args.cmake, "--install", build, "--prefix", prefix], 60, env=env)
        if c.ok(code == 0, "cmake --install --prefix TMP/x", tail(out)):
            check_tree(c, "install", prefix, source, version)

        code, out = run([args.cpack, "-G", "DEB"], 180, env=env, cwd=build)
        debs = glob.glob(os.path.join(build, "*.deb"))
        if not c.ok(code == 0 and len(debs) == 1, "cpack -G DEB makes one .deb", tail(out)):
            return
        c.ok(not os.path.exists(node_record), "configure, build, install and cpack never ran node/npm/npx",
             open(node_record).read() if os.path.exists(node_record) else "")
        deb = debs[0]
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                              text=True, timeout=30).stdout.strip()
        c.ok(os.path.basename(deb) == f"patterngate_{version}_{arch}.deb",
             "the .deb is named patterngate_VERSION_ARCH.deb", os.path.basename(deb))
        f = control_fields(deb)
        c.ok(f.get("Package") == "patterngate", "Package: patterngate", str(f.get("Package")))
        c.ok(f.get("Version") == version, f"Version: {version}", str(f.get("Version")))
        c.ok(f.get("Architecture") == arch, f"Architecture: {arch}", str(f.get("Architecture")))
        c.ok(f.get("Section"), "Section is set")
        c.ok(re.match(r"^.+ <[^@>\s]+@[^>\s]+>$", f.get("Maintainer", "")), "Maintainer is 'name <address>'",
             str(f.get("Maintainer")))
        c.ok("\n" in f.get("Description", ""), "Description has a summary and a long text")
        depends = f.get("Depends", "")
        c.note(f"Depends: {depends}")
        names = depends_names(depends)
        for pkg in REQUIRED_DEPENDS:
            c.ok(pkg in names, f"Depends names {pkg}", depends)

        unpacked = os.path.join(tmp, "deb")
        code, out = run(["dpkg-deb", "-x", deb, unpacked], 60)
        if not c.ok(code == 0, "dpkg-deb -x", tail(out)):
            return
        usr = os.path.join(unpacked, "usr")
        c.ok(tree_files(usr) == tree_files(prefix), "the .deb holds the install's files under usr/",
             str(sorted(tree_files(usr) ^ tree_files(prefix))))
        check_tree(c, "deb", usr, source, version)
        for so, owner in sorted(needed_packages(os.path.join(usr, "bin", "patterngate")).items()):
            c.ok(owner and owner in names, f"Depends names the package of {so}", f"{owner}; {depends}")
    except Exception:  # noqa: BLE001 -- reported as a failed check, never lost
        c.ok(False, "the check ran to its end", traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        c.note(f"{time.monotonic() - started:.0f} s in all")
        c.finish()


if __name__ == "__main__":
    main()
