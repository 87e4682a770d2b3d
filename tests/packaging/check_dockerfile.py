#!/usr/bin/env python3
"""Offline checks of docker/Dockerfile (no Docker engine runs here).

- Lint: every FROM pinned to a Debian 12 tag (never `latest`), multi-stage
  with a `build` stage; exec-form (JSON) ENTRYPOINT, CMD and HEALTHCHECK;
  a numeric non-root USER in the final stage; apt-get with
  --no-install-recommends and its lists removed in the same RUN; the binary
  copied with COPY --from=build; EXPOSE, STOPSIGNAL, labels.
- The build stage installs a subset of scripts/setup's apt packages and
  builds a Release without tests.
- The runtime stage installs every Debian package that provides a shared
  library of the built binary (`ldd` + `dpkg -S`), except libc6/libgcc-s1,
  sanitizer runtimes (an ASan build) and packages that the listed ones
  depend on anyway (their Depends closure in the dpkg database); and it
  installs nothing that no library needs but ca-certificates.
- docker/config.json passes `patterngate --check` with the image's ENV, and
  its ports agree with EXPOSE and with the healthcheck's default URL.
"""
import json
import os
import re
import shlex
import subprocess

from checklib import Checks, parse_args, pg_check, project_version, hostport_port

ALLOWED_BASES = re.compile(
    r"^(docker\.io/library/)?debian:(12|bookworm)(-slim)?(@sha256:[0-9a-f]{64})?$"
    r"|^gcr\.io/distroless/[a-z0-9-]+-debian12(:[a-z0-9-]+)?(@sha256:[0-9a-f]{64})?$")
# Packages every Debian image has, or that only a sanitizer build links.
IGNORED_PACKAGES = re.compile(r"^(libc6|libgcc-s1|libstdc\+\+6|libasan\d+|libubsan\d+|libclang-rt-.*)$")
EXTRA_RUNTIME_OK = {"ca-certificates"}   # no library, but TLS to services needs it


def instructions(text):
    """[(stage index, KEYWORD, argument text)] with continuations joined."""
    out, stage, pending = [], -1, ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arg = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append((stage, keyword, arg.strip()))
    return out


def exec_form(arg):
    try:
        v = json.loads(arg)
    except ValueError:
        return None
    return v if isinstance(v, list) and v and all(isinstance(s, str) for s in v) else None


def apt_packages(run_arg):
    """Package names after `apt-get install` in a RUN (up to the next &&)."""
    pkgs = []
    for part in re.split(r"&&|;", run_arg):
        words = shlex.split(part)
        if "apt-get" in words and "install" in words:
            after = words[words.index("install") + 1:]
            pkgs += [w for w in after if not w.startswith("-")]
    return pkgs


def setup_apt_packages(source):
    text = open(os.path.join(source, "scripts", "setup")).read()
    m = re.search(r"apt_packages=\((.*?)\)", text, re.S)
    return set(m.group(1).split()) if m else set()


def package_of(path):
    """The Debian package that owns a library file, or None."""
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        for a, b in (("/usr/lib/", "/lib/"), ("/lib/", "/usr/lib/")):
            if p.startswith(a):
                candidates.append(b + p[len(a):])
    for p in candidates:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].strip()
    return None


def linked_libraries(binary):
    r = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True)
    libs = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            libs.append((m.group(1), m.group(2)))
    return libs


def depends_closure(packages):
    """Every installed package the given ones depend on, recursively."""
    seen, todo = set(), list(packages)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", p],
                           capture_output=True, text=True)
        for alt in r.stdout.split(","):
            for choice in alt.split("|"):
                name = choice.strip().split(" ")[0].split(":")[0]
                if name:
                    todo.append(name)
    return seen


def check_lint(c, ins, stages, version):
    froms = [a for _, k, a in ins if k == "FROM"]
    c.ok(len(froms) >= 2, "multi-stage (a build and a runtime stage)", str(froms))
    for f in froms:
        image = f.split()[0]
        c.ok(ALLOWED_BASES.match(image), f"FROM {image} is a pinned Debian 12 image")
        c.ok(":latest" not in image and (":" in image or "@" in image), f"FROM {image} has a tag, not latest")
    c.ok(re.search(r"\bAS build$", froms[0], re.I) is not None, "the first stage is named build", froms[0])
    final = len(froms) - 1
    last = [(k, a) for s, k, a in ins if s == final]
    kinds = {}
    for k, a in last:
        kinds.setdefault(k, []).append(a)
    for k in ("ENTRYPOINT", "CMD"):
        c.ok(k in kinds and exec_form(kinds[k][-1]) is not None, f"final stage {k} in exec form",
             str(kinds.get(k)))
    c.ok(exec_form(kinds["ENTRYPOINT"][-1]) == ["/usr/local/bin/patterngate"], "ENTRYPOINT is the binary")
    c.ok(exec_form(kinds["CMD"][-1]) == ["-c", "/etc/patterngate/config.json"], "CMD names the config")
    hc = kinds.get("HEALTHCHECK", [""])[-1]
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", hc)
    hc_cmd = exec_form(m.group(1)) if m else None
    c.ok(hc_cmd == ["/usr/local/bin/patterngate", "healthcheck"], "HEALTHCHECK CMD in exec form", hc)
    users = kinds.get("USER", [])
    c.ok(users and re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", users[-1]) is not None,
         "final stage USER is numeric and not root", str(users))
    c.ok(kinds.get("STOPSIGNAL") == ["SIGTERM"], "STOPSIGNAL SIGTERM")
    exposed = {int(p.split("/")[0]) for a in kinds.get("EXPOSE", []) for p in a.split()}
    c.ok(exposed == {8080, 9901}, "EXPOSE 8080 9901", str(exposed))
    labels = " ".join(kinds.get("LABEL", []))
    c.ok(f'org.opencontainers.image.version="{version}"' in labels,
         f"image version label matches CMakeLists.txt ({version})", labels)
    copies = kinds.get("COPY", [])
    c.ok(any(re.match(r"--from=build\s+\S*/patterngate\s+/usr/local/bin/patterngate$", a) for a in copies),
         "COPY --from=build of the binary", str(copies))
    c.ok("docker/config.json /etc/patterngate/config.json" in copies, "the default config is copied", str(copies))
    for s, k, a in ins:
        if k == "RUN" and "apt-get install" in a:
            c.ok("--no-install-recommends" in a, f"stage {s}: apt-get install --no-install-recommends")
            c.ok("apt-get update" in a and "rm -rf /var/lib/apt/lists/*" in a,
                 f"stage {s}: apt-get update and list cleanup in the same RUN")
        if k == "ADD":
            c.ok(False, "use COPY, not ADD", a)
    return final, kinds


def check_build_stage(c, source, ins):
    build_runs = " && ".join(a for s, k, a in ins if s == 0 and k == "RUN")
    wanted = set(apt_packages(build_runs))
    setup = setup_apt_packages(source)
    c.ok(wanted and wanted <= setup, "build stage packages are scripts/setup's",
         str(sorted(wanted - setup)))
    c.ok("-DPG_TESTS=OFF" in build_runs and "-DCMAKE_BUILD_TYPE=Release" in build_runs,
         "build stage: Release build without tests")


def check_runtime_packages(c, binary, ins, final):
    runtime = set(apt_packages(" && ".join(a for s, k, a in ins if s == final and k == "RUN")))
    c.ok(runtime, "runtime stage installs packages")
    libs = linked_libraries(binary)
    c.ok(libs, "ldd lists the binary's libraries")
    needed = {}
    for soname, path in libs:
        pkg = package_of(path)
        c.ok(pkg is not None, f"dpkg knows the package of {path}")
        if pkg:
            needed.setdefault(pkg, []).append(soname)
    closure = depends_closure(runtime)
    direct = set()
    for pkg, sonames in sorted(needed.items()):
        if IGNORED_PACKAGES.match(pkg):
            continue
        c.ok(pkg in closure, f"{pkg} ({', '.join(sonames)}) is installed by the runtime stage "
             f"or pulled in by what it installs")
        if pkg in runtime:
            direct.add(pkg)
    extra = runtime - set(needed) - EXTRA_RUNTIME_OK
    c.ok(not extra, "the runtime stage installs nothing the binary does not need", str(sorted(extra)))
    c.note(f"binary links {len(libs)} libraries from {len(needed)} packages; "
           f"runtime stage installs {sorted(runtime)}")


def check_config(c, source, binary, kinds):
    config = os.path.join(source, "docker", "config.json")
    env = {}
    for a in kinds.get("ENV", []):
        for word in shlex.split(a):
            k, _, v = word.partition("=")
            env[k] = v
    c.ok("PATTERNGATE_UPSTREAM" in env, "the image sets PATTERNGATE_UPSTREAM", str(env))
    rc, out, err = pg_check(binary, config, env)
    c.ok(rc == 0 and out.startswith("ok: 1 service"), "--check docker/config.json with the image's ENV",
         f"exit {rc}: {out} {err}")
    rc, out, err = pg_check(binary, config, {"PATTERNGATE_UPSTREAM": "", "PATTERNGATE_LOG_LEVEL": ""})
    c.ok(rc == 0, "--check docker/config.json with the variables empty (defaults)", f"exit {rc}: {err}")
    rc, out, err = pg_check(binary, config, {"PATTERNGATE_UPSTREAM": "nest.internal:3000"})
    c.ok(rc == 0, "--check with a DNS name upstream", f"exit {rc}: {err}")
    cfg = json.load(open(config))
    c.ok(cfg.get("listen", "").startswith("0.0.0.0:") and hostport_port(cfg["listen"]) == 8080,
         "image config listens on 0.0.0.0:8080", cfg.get("listen"))
    c.ok(cfg.get("admin_listen") == "0.0.0.0:9901", "image config admin_listen 0.0.0.0:9901")
    c.ok(cfg.get("generic_api") == list(cfg.get("services", {})), "generic API allow-lists the service")
    hc_src = open(os.path.join(source, "gateway", "cli_healthcheck.c")).read()
    m = re.search(r'#define HC_DEFAULT_URL "http://127\.0\.0\.1:(\d+)/healthz"', hc_src)
    c.ok(m and int(m.group(1)) == hostport_port(cfg["admin_listen"]),
         "healthcheck's default URL is the image's admin port")


def check_dockerignore(c, source):
    path = os.path.join(source, "docker", "Dockerfile.dockerignore")
    lines = set(open(path).read().split()) if os.path.exists(path) else set()
    for entry in (".git", "build", "**/node_modules"):
        c.ok(entry in lines, f"Dockerfile.dockerignore excludes {entry}")


def main():
    args = parse_args()
    c = Checks("dockerfile")
    text = open(os.path.join(args.source, "docker", "Dockerfile")).read()
    ins = instructions(text)
    final, kinds = check_lint(c, ins, None, project_version(args.source))
    check_build_stage(c, args.source, ins)
    check_runtime_packages(c, args.binary, ins, final)
    check_config(c, args.source, args.binary, kinds)
    check_dockerignore(c, args.source)
    c.finish()


if __name__ == "__main__":
    main()
