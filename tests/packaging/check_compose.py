#!/usr/bin/env python3
"""Offline checks of docker/compose.yaml and the example images.

- `docker-compose config -q` (Debian's docker-compose 1.29, which parses and
  validates without a Docker engine) accepts the file, with each profile;
  without docker-compose installed the file is parsed with python3-yaml
  only, and a note says so.
- Structure: the ingress gateway publishes 8080 to its listen port; the
  egress client shares the egress gateway's network namespace, waits for its
  health check, and calls the port the gateway listens on; configs are
  mounted as folders (so a change is seen and reloaded); every service the
  configs name resolves to a compose service and port; images never
  `latest`; example Dockerfiles pinned, exec form, non-root.
- Each mounted config passes `patterngate --check` with the compose
  service's environment, and every ${NAME} without a default is set.
- The example Nest service: dependencies pinned exactly, package-lock.json
  in step, and every pattern the configs route to is one of its
  @MessagePattern / @EventPattern handlers (events routed as `emit`).
"""
import json
import os
import re
import shutil
import subprocess

import yaml

from checklib import Checks, parse_args, pg_check, hostport_port, env_refs

COMPOSE = os.path.join("docker", "compose.yaml")


def compose_config(c, source):
    """The compose model with every profile on (docker-compose's resolved
    output, or the raw YAML)."""
    path = os.path.join(source, COMPOSE)
    dc = shutil.which("docker-compose")
    if dc is None:
        c.note("docker-compose not installed: the file is checked with python3-yaml only")
        return yaml.safe_load(open(path))
    base = [dc, "--project-directory", os.path.dirname(path), "-f", path]
    for profiles in ([], ["--profile", "ingress"], ["--profile", "egress"]):
        r = subprocess.run(base + profiles + ["config", "-q"], capture_output=True, text=True, timeout=120)
        c.ok(r.returncode == 0, f"docker-compose config -q {' '.join(profiles)}", r.stderr.strip())
    r = subprocess.run(base + ["--profile", "ingress", "--profile", "egress", "config"],
                       capture_output=True, text=True, timeout=120)
    c.ok(r.returncode == 0, "docker-compose config (resolved)", r.stderr.strip())
    return yaml.safe_load(r.stdout) if r.returncode == 0 else yaml.safe_load(open(path))


def mount_of(service, target, compose_dir):
    """The host folder mounted at `target`, as an absolute path, or None."""
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            src, dst = v.get("source"), v.get("target")
        else:
            src, dst = v.split(":")[0], v.split(":")[1]
        if dst == target:
            return os.path.normpath(os.path.join(compose_dir, src))
    return None


def published(service):
    out = {}
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out[int(p["published"])] = int(p["target"])
        else:
            host, _, target = str(p).rpartition(":")
            out[int(host.split(":")[-1])] = int(target)
    return out


def check_gateway_service(c, source, binary, services, name):
    svc = services[name]
    compose_dir = os.path.join(source, "docker")
    c.ok(svc.get("image", "").startswith("patterngate:"), f"{name} runs the patterngate image")
    folder = mount_of(svc, "/etc/patterngate", compose_dir)
    c.ok(folder and os.path.isdir(folder), f"{name}: a config folder is mounted at /etc/patterngate", str(folder))
    if not folder or not os.path.isdir(folder):
        return None, {}
    config = os.path.join(folder, "config.json")
    env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
    text = open(config).read()
    required, _ = env_refs(text)
    c.ok(required <= set(env), f"{name}: every ${{NAME}} without default is set", str(required - set(env)))
    rc, out, err = pg_check(binary, config, env)
    c.ok(rc == 0, f"{name}: --check {os.path.relpath(config, source)} with the service's environment",
         f"exit {rc}: {err}")
    cfg = json.loads(subst(text, env))
    for sname, s in cfg.get("services", {}).items():
        for ep in s["endpoints"]:
            host, port = ep.rsplit(":", 1)
            c.ok(host in services, f"{name}: service {sname}'s endpoint {ep} is a compose service")
            if host in services:
                nest_port = (services[host].get("environment") or {}).get("PORT")
                c.ok(str(nest_port) == port, f"{name}: {ep} is the port {host} listens on", str(nest_port))
    return cfg, env


def subst(text, env):
    def repl(m):
        value = env.get(m.group(1), "")
        return value if value else (m.group(2) or "")[2:]
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}", repl, text)


def check_structure(c, source, binary, model):
    services = model.get("services", {})
    for name in ("nest-service", "ingress", "egress-gateway", "egress-client"):
        c.ok(name in services, f"compose service {name}")
    for name, svc in services.items():
        image = svc.get("image", "")
        c.ok(image and not image.endswith(":latest") and ":" in image, f"{name}: image tagged, not latest", image)
    c.ok(services["ingress"].get("profiles") == ["ingress"], "ingress is the `ingress` profile")
    c.ok(set(services["egress-gateway"].get("profiles", [])) == {"egress"} ==
         set(services["egress-client"].get("profiles", [])), "egress services are the `egress` profile")
    cfg, _ = check_gateway_service(c, source, binary, services, "ingress")
    if cfg:
        ports = published(services["ingress"])
        c.ok(ports.get(8080) == hostport_port(cfg["listen"]), "ingress publishes 8080 to its listen port",
             str(ports))
        c.ok(cfg["listen"].startswith("0.0.0.0:"), "ingress listens on every address", cfg["listen"])
        c.ok(9901 not in ports, "the admin port is not published")
    cfg, _ = check_gateway_service(c, source, binary, services, "egress-gateway")
    client = services["egress-client"]
    c.ok(client.get("network_mode") == "service:egress-gateway", "egress client shares the sidecar's network")
    dep = client.get("depends_on", {})
    c.ok(isinstance(dep, dict) and dep.get("egress-gateway", {}).get("condition") == "service_healthy",
         "egress client waits for the sidecar's HEALTHCHECK", str(dep))
    if cfg:
        url = (client.get("environment") or {}).get("GATEWAY_URL", "")
        m = re.match(r"http://127\.0\.0\.1:(\d+)$", url)
        c.ok(cfg["listen"].startswith("127.0.0.1:"), "egress gateway listens on loopback only", cfg["listen"])
        c.ok(m and int(m.group(1)) == hostport_port(cfg["listen"]), "GATEWAY_URL is the sidecar's listen", url)


def check_example_dockerfiles(c, source):
    for d in ("nest-service", "egress-client"):
        path = os.path.join(source, "examples", d, "Dockerfile")
        text = open(path).read()
        froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
        c.ok(froms and all(":" in f and not f.endswith(":latest") for f in froms), f"{d}: FROM pinned", str(froms))
        cmd = re.findall(r"^CMD\s+(.*)$", text, re.M)
        c.ok(cmd and cmd[-1].startswith("["), f"{d}: CMD in exec form")
        users = re.findall(r"^USER\s+(\S+)", text, re.M)
        c.ok(users and users[-1] not in ("root", "0", "0:0"), f"{d}: runs as a non-root user", str(users))


def js_pattern(arg):
    """A decorator's argument as JSON: 'x' or { cmd: 'sum' }."""
    arg = arg.strip()
    arg = re.sub(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:", r'\1"\2":', arg)
    return json.loads(arg.replace("'", '"'))


def check_nest_example(c, source):
    d = os.path.join(source, "examples", "nest-service")
    pkg = json.load(open(os.path.join(d, "package.json")))
    lock = json.load(open(os.path.join(d, "package-lock.json")))
    deps = pkg.get("dependencies", {})
    c.ok(deps.get("@nestjs/microservices", "").startswith("12."), "the example is a Nest 12 service")
    for name, version in deps.items():
        c.ok(re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} pinned exactly", version)
        locked = lock.get("packages", {}).get(f"node_modules/{name}", {}).get("version")
        c.ok(locked == version, f"package-lock.json has {name} {version}", str(locked))
    src = open(os.path.join(d, "main.mjs")).read()
    messages = [js_pattern(a) for a in re.findall(r"MessagePattern\((.*?)\)\);", src)]
    events = [js_pattern(a) for a in re.findall(r"EventPattern\((.*?)\)\);", src)]
    c.ok(messages and events, "the example has @MessagePattern and @EventPattern handlers")
    c.ok("rxjs.interval" in src, "one handler returns an Observable stream")
    for cfg_dir in ("ingress", "egress"):
        cfg = json.load(open(os.path.join(source, "examples", cfg_dir, "config.json")))
        for r in cfg.get("routes", []):
            pool = events if r.get("kind") == "emit" else messages
            c.ok(r["pattern"] in pool, f"examples/{cfg_dir}: {r['method']} {r['path']} routes to a "
                 f"{'event' if r.get('kind') == 'emit' else 'message'} handler", json.dumps(r["pattern"]))
    client = open(os.path.join(source, "examples", "egress-client", "client.py")).read()
    c.ok("import requests" not in client and "nestjs" not in client.lower().replace("nestjs service", ""),
         "the egress client is a plain HTTP client (standard library)")


def main():
    args = parse_args()
    c = Checks("compose")
    model = compose_config(c, args.source)
    check_structure(c, args.source, args.binary, model)
    check_example_dockerfiles(c, args.source)
    check_nest_example(c, args.source)
    c.finish()


if __name__ == "__main__":
    main()
