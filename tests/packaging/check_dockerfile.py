#!/usr/bin/env python3
"""Offline checks of docker/Dockerfile (no Docker engine runs here).

- Lint: the build stage on a pinned Debian 12 tag, the runtime stage on
  gcr.io/distroless/cc-debian12 with a pinned tag (never `latest`); exec-form
  (JSON) ENTRYPOINT, CMD and HEALTHCHECK; a numeric non-root USER in the
  final stage (65532, distroless' nonroot, on a `nonroot` base); no RUN in
  the final stage (distroless has no shell and no apt); apt-get with
  --no-install-recommends and its lists removed in the same RUN; the binary,
  the staged libraries and the config copied; EXPOSE, STOPSIGNAL, labels,
  SSL_CERT_FILE.
- The build stage installs a subset of scripts/setup's apt packages, builds
  a Release without tests, and runs docker/stage-libs.sh (staging, then the
  chroot trial) on the binary it copies into the runtime stage.
- Runtime libraries: the base's libraries, CC_BASE below, are the ones
  docker/stage-libs.sh leaves out (BASE_SONAMES), and each installed package
  of CC_BASE ships exactly its listed sonames here (dpkg -L). The script is
  run on the built binary into a temporary folder: every library `ldd`
  resolves is provided by the base or staged (sanitizer runtimes of an ASan
  build aside), nothing the base provides is staged, each staged file is
  named by its SONAME in a /usr/lib directory of the loader's default path,
  and every DT_NEEDED of the binary and of each staged library (`readelf -d`)
  is the base's or staged. When chroot is possible (root, or `unshare -r`),
  `stage-libs.sh --try` then runs the binary with only those libraries.
- docker/config.json passes `patterngate --check` with the image's ENV, and
  its ports agree with EXPOSE; the HEALTHCHECK gives the healthcheck that
  config (`-c`, the file CMD names), from which it derives its URL: the
  admin_listen, 0.0.0.0 made 127.0.0.1.
"""
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile

from checklib import Checks, parse_args, pg_check, project_version, hostport_port

BUILD_BASE = re.compile(r"^(docker\.io/library/)?debian:(12|bookworm)(\.\d+)?(@sha256:[0-9a-f]{64})?$")
RUNTIME_BASE = re.compile(r"^gcr\.io/distroless/cc-debian12:([a-z0-9-]+)(@sha256:[0-9a-f]{64})?$")
# What gcr.io/distroless/cc-debian12 provides of the binary's libraries: its
# Debian packages libc6 and libssl3 (as base-debian12) and libgcc-s1,
# libstdc++6, libgomp1 (added by cc), by soname. libc6's list holds the
# loaders of both architectures the image is built for (amd64, arm64).
CC_BASE = {
    "libc6": {"ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "libc.so.6", "libm.so.6",
              "libmvec.so.1", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libutil.so.1",
              "libresolv.so.2", "libanl.so.1", "libnsl.so.1", "libBrokenLocale.so.1",
              "libc_malloc_debug.so.0", "libthread_db.so.1", "libnss_files.so.2",
              "libnss_dns.so.2", "libnss_compat.so.2", "libnss_hesiod.so.2"},
    "libssl3": {"libssl.so.3", "libcrypto.so.3"},
    "libgcc-s1": {"libgcc_s.so.1"},
    "libstdc++6": {"libstdc++.so.6"},
    "libgomp1": {"libgomp.so.1"},
}
CC_BASE_SONAMES = set().union(*CC_BASE.values())
# Only an ASan/UBSan build links these; the image's Release binary never does.
SANITIZER = re.compile(r"^lib(asan|ubsan|tsan|lsan|hwasan)\.so\.\d+$|^libclang_rt\.")
STAGE_SCRIPT = os.path.join("docker", "stage-libs.sh")


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


def linked_libraries(binary):
    """[(soname, path)] that `ldd` resolves, the loader included (by its file
    name); linux-vdso has no file and is left out."""
    r = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True)
    libs = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            libs.append((m.group(1), m.group(2)))
            continue
        m = re.match(r"\s*(/\S+) \(0x", line)
        if m:
            libs.append((os.path.basename(m.group(1)), m.group(1)))
    return libs


def check_lint(c, ins, version):
    froms = [a for _, k, a in ins if k == "FROM"]
    c.ok(len(froms) == 2, "two stages (build and runtime)", str(froms))
    for f in froms:
        image = f.split()[0]
        c.ok(":latest" not in image and ":" in image, f"FROM {image} has a tag, not latest")
    build_image, runtime_image = froms[0].split()[0], froms[-1].split()[0]
    c.ok(BUILD_BASE.match(build_image), f"build stage FROM {build_image} is a pinned Debian 12 image")
    c.ok(re.search(r"\bAS build$", froms[0], re.I) is not None, "the first stage is named build", froms[0])
    m = RUNTIME_BASE.match(runtime_image)
    c.ok(m is not None, "runtime stage FROM is gcr.io/distroless/cc-debian12 with a tag "
         "(the base whose libraries CC_BASE lists)", runtime_image)
    base_tag = m.group(1) if m else ""
    final = len(froms) - 1
    last = [(k, a) for s, k, a in ins if s == final]
    kinds = {}
    for k, a in last:
        kinds.setdefault(k, []).append(a)
    for k in ("ENTRYPOINT", "CMD"):
        c.ok(k in kinds and exec_form(kinds[k][-1]) is not None, f"final stage {k} in exec form",
             str(kinds.get(k)))
    c.ok(exec_form(kinds.get("ENTRYPOINT", [""])[-1]) == ["/usr/local/bin/patterngate"],
         "ENTRYPOINT is the binary")
    c.ok(exec_form(kinds.get("CMD", [""])[-1]) == ["-c", "/etc/patterngate/config.json"], "CMD names the config")
    hc = kinds.get("HEALTHCHECK", [""])[-1]
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", hc)
    hc_cmd = exec_form(m.group(1)) if m else None
    c.ok(hc_cmd == ["/usr/local/bin/patterngate", "healthcheck", "-c", "/etc/patterngate/config.json"],
         "HEALTHCHECK CMD in exec form, with the config CMD names (its URL comes from it)", hc)
    users = kinds.get("USER", [])
    c.ok(users and re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", users[-1]) is not None,
         "final stage USER is numeric and not root", str(users))
    if "nonroot" in base_tag:
        c.ok(users and users[-1] in ("65532", "65532:65532"),
             "USER is distroless' nonroot user (65532:65532)", str(users))
    c.ok("RUN" not in kinds, "no RUN in the runtime stage (distroless: no shell, no apt)",
         str(kinds.get("RUN")))
    c.ok(kinds.get("STOPSIGNAL") == ["SIGTERM"], "STOPSIGNAL SIGTERM")
    exposed = {int(p.split("/")[0]) for a in kinds.get("EXPOSE", []) for p in a.split()}
    c.ok(exposed == {8080, 9901}, "EXPOSE 8080 9901", str(exposed))
    labels = " ".join(kinds.get("LABEL", []))
    c.ok(f'org.opencontainers.image.version="{version}"' in labels,
         f"image version label matches CMakeLists.txt ({version})", labels)
    c.ok(f'org.opencontainers.image.base.name="{runtime_image}"' in labels,
         "base.name label names the runtime FROM", labels)
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


def image_env(kinds):
    env = {}
    for a in kinds.get("ENV", []):
        for word in shlex.split(a):
            k, _, v = word.partition("=")
            env[k] = v
    return env


def check_build_stage(c, source, ins, kinds):
    """The build stage's packages and build; its staging RUN and the COPY of
    the staged folder. Returns the staging folder (or None)."""
    build_runs = " && ".join(a for s, k, a in ins if s == 0 and k == "RUN")
    wanted = set(apt_packages(build_runs))
    setup = setup_apt_packages(source)
    c.ok(wanted and wanted <= setup, "build stage packages are scripts/setup's",
         str(sorted(wanted - setup)))
    c.ok("-DPATTERNGATE_TESTS=OFF" in build_runs and "-DCMAKE_BUILD_TYPE=Release" in build_runs,
         "build stage: Release build without tests")
    workdir = ([a for s, k, a in ins if s == 0 and k == "WORKDIR"] or ["/"])[-1]
    stage = re.findall(r"\bdocker/stage-libs\.sh\s+(?!-)(\S+)\s+(\S+)", build_runs)
    trial = re.findall(r"\bdocker/stage-libs\.sh\s+--try\s+(\S+)\s+(\S+)", build_runs)
    c.ok(len(stage) == 1, "build stage runs docker/stage-libs.sh BINARY DESTDIR once", str(stage))
    c.ok(len(trial) == 1 and stage and trial[0] == stage[0],
         "build stage runs docker/stage-libs.sh --try on the same binary and folder", str(trial))
    if not stage:
        return None
    binary, dest = stage[0]
    binary_abs = os.path.normpath(os.path.join(workdir, binary))
    copies = kinds.get("COPY", [])
    c.ok(f"--from=build {binary_abs} /usr/local/bin/patterngate" in copies,
         f"the staged binary ({binary_abs}) is the one copied into the image", str(copies))
    dest_abs = os.path.normpath(os.path.join(workdir, dest))
    c.ok(f"--from=build {dest_abs}/ /" in copies,
         f"COPY --from=build {dest_abs}/ / (the staged libraries, at their paths)", str(copies))
    return dest_abs


def script_base_sonames(source):
    text = open(os.path.join(source, STAGE_SCRIPT)).read()
    m = re.search(r'^BASE_SONAMES="([^"]*)"', text, re.M)
    return set(m.group(1).split()) if m else set()


def package_sonames(pkg):
    """Sonames of the shared libraries a package installs directly in a lib
    directory (not in subfolders such as engines-3/ or gconv/), or None when
    the package is not installed here."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    if r.returncode != 0 or "installed" not in r.stdout.split():
        return None
    r = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
    names = set()
    for path in r.stdout.split():
        if (re.match(r"^(/usr)?/lib(64)?(/[a-z0-9_]+-linux-gnu[a-z0-9_]*)?/[^/]+$", path)
                and re.search(r"\.so\.\d+$", path)
                and re.match(r"^(lib|ld-linux)", os.path.basename(path))):
            names.add(os.path.basename(path))
    return names


def check_base_list(c, source, loader):
    script = script_base_sonames(source)
    c.ok(script == CC_BASE_SONAMES, "docker/stage-libs.sh's BASE_SONAMES equals the test's CC_BASE",
         f"only in the script: {sorted(script - CC_BASE_SONAMES)}, "
         f"only in the test: {sorted(CC_BASE_SONAMES - script)}")
    for pkg, listed in sorted(CC_BASE.items()):
        shipped = package_sonames(pkg)
        if shipped is None:
            c.note(f"{pkg} is not installed here: its sonames {sorted(listed)} are not checked against dpkg")
            continue
        other_arch = {n for n in listed - shipped if n.startswith("ld-linux") and n != loader}
        c.ok(listed - other_arch == shipped, f"CC_BASE[{pkg}] is exactly what {pkg} ships here",
             f"missing {sorted(shipped - listed)}, extra {sorted(listed - other_arch - shipped)}")


def elf_dynamic(path):
    """(SONAME or None, [NEEDED]) from `readelf -d`."""
    r = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True)
    soname = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", r.stdout)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)
    return (soname.group(1) if soname else None), needed


def chroot_runner():
    """A command prefix under which chroot works, or None."""
    if os.geteuid() == 0:
        return []
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-r", "true"], capture_output=True).returncode == 0:
        return [unshare, "-r"]
    return None


def check_runtime_libraries(c, source, binary, staging_dir):
    libs = linked_libraries(binary)
    c.ok(libs, "ldd lists the binary's libraries")
    loader = next((os.path.basename(p) for s, p in libs if s.startswith("ld-linux")), None)
    c.ok(loader in CC_BASE_SONAMES, "the binary's loader is the base's", str(loader))
    check_base_list(c, source, loader)
    sanitizer = {s for s, _ in libs if SANITIZER.match(s)}
    if sanitizer:
        c.note(f"sanitizer runtimes {sorted(sanitizer)} are ignored (an ASan build; "
               f"the image's Release binary does not link them)")
    libc_dir = next((os.path.dirname(os.path.realpath(p)) for s, p in libs if s == "libc.so.6"), "")
    default_dirs = {"/usr" + libc_dir if libc_dir.startswith("/lib/") else libc_dir, "/usr/lib"}
    tmp = tempfile.mkdtemp(prefix="pg-stage-")
    try:
        dest = os.path.join(tmp, (staging_dir or "/out/rootfs").lstrip("/"))
        r = subprocess.run(["sh", os.path.join(source, STAGE_SCRIPT), binary, dest],
                           capture_output=True, text=True, timeout=120)
        c.ok(r.returncode == 0, "docker/stage-libs.sh stages the binary's libraries", r.stderr.strip())
        staged = {}   # soname -> path inside the image
        for root, _, files in os.walk(dest):
            for f in files:
                full = os.path.join(root, f)
                in_image = "/" + os.path.relpath(full, dest)
                soname, _ = elf_dynamic(full)
                c.ok(soname == f and not os.path.islink(full),
                     f"{in_image} is a regular file named by its SONAME", str(soname))
                c.ok(os.path.dirname(in_image) in default_dirs,
                     f"{in_image} is in a default loader directory {sorted(default_dirs)}")
                staged[f] = full
        c.ok(staged, "the staging folder holds libraries")
        c.ok(not (set(staged) & CC_BASE_SONAMES), "nothing the base provides is staged",
             str(sorted(set(staged) & CC_BASE_SONAMES)))
        for soname, path in libs:
            c.ok(soname in CC_BASE_SONAMES or soname in staged,
                 f"{soname} ({path}) is provided by the base or staged")
        resolved = {s for s, _ in libs}
        c.ok(set(staged) <= resolved, "only libraries ldd resolves are staged",
             str(sorted(set(staged) - resolved)))
        # The loader loads DT_NEEDED entries, recursively: all must be there.
        available = CC_BASE_SONAMES | set(staged)
        for name, path in [(os.path.basename(binary), binary)] + sorted(staged.items()):
            _, needed = elf_dynamic(path)
            missing = [n for n in needed if n not in available and n not in sanitizer]
            c.ok(not missing, f"every DT_NEEDED of {name} is the base's or staged", str(missing))
        runner = chroot_runner()
        if runner is None:
            c.note("chroot is not possible here (not root, no unshare -r): "
                   "stage-libs.sh --try skipped; the DT_NEEDED closure above still holds")
        elif sanitizer:
            c.note("stage-libs.sh --try skipped for a sanitizer build (its runtime needs /proc)")
        else:
            r = subprocess.run(runner + ["sh", os.path.join(source, STAGE_SCRIPT), "--try", binary, dest],
                               capture_output=True, text=True, timeout=120)
            c.ok(r.returncode == 0 and "patterngate " in r.stdout,
                 "the binary runs in a chroot with only the staged and the base's libraries "
                 "(stage-libs.sh --try)", (r.stdout + r.stderr).strip())
        c.note(f"binary links {len(libs)} libraries; {len(staged)} staged: {sorted(staged)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_config(c, source, binary, kinds):
    config = os.path.join(source, "docker", "config.json")
    env = image_env(kinds)
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
    # The URL the HEALTHCHECK derives, as a failure names it; whatever may
    # listen on 9901 on this machine, a failure must name that URL.
    r = subprocess.run([binary, "healthcheck", "-c", config], capture_output=True, text=True,
                       timeout=30, env={**os.environ, **env})
    c.ok(r.returncode == 0 or "http://127.0.0.1:9901/healthz: " in r.stderr,
         "healthcheck -c docker/config.json checks http://127.0.0.1:9901/healthz",
         f"exit {r.returncode}: {r.stderr.strip()}")


def check_dockerignore(c, source):
    path = os.path.join(source, "docker", "Dockerfile.dockerignore")
    lines = set(open(path).read().split()) if os.path.exists(path) else set()
    for entry in (".git", "build", "**/node_modules"):
        c.ok(entry in lines, f"Dockerfile.dockerignore excludes {entry}")
    patterns = [l for l in lines if not l.startswith("#") and not l.startswith("!")]
    for needed in ("docker", STAGE_SCRIPT, "docker/config.json"):
        hit = [p for p in patterns if fnmatch.fnmatch(needed, p.rstrip("/"))]
        c.ok(not hit, f"{needed} stays in the build context", str(hit))


def main():
    args = parse_args()
    c = Checks("dockerfile")
    text = open(os.path.join(args.source, "docker", "Dockerfile")).read()
    ins = instructions(text)
    final, kinds = check_lint(c, ins, project_version(args.source))
    env = image_env(kinds)
    c.ok(env.get("SSL_CERT_FILE") == "/etc/ssl/certs/ca-certificates.crt",
         "SSL_CERT_FILE names the base's CA bundle (no openssl package, no /usr/lib/ssl/certs)",
         str(env))
    staging_dir = check_build_stage(c, args.source, ins, kinds)
    check_runtime_libraries(c, args.source, args.binary, staging_dir)
    check_config(c, args.source, args.binary, kinds)
    check_dockerignore(c, args.source)
    c.finish()


if __name__ == "__main__":
    main()
