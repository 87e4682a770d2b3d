#!/usr/bin/env python3
"""Runs the examples of docker/compose.yaml without Docker, on loopback:
the example Nest service (examples/nest-service, node), patterngate on
examples/ingress/config.json and on examples/egress/config.json (the
addresses moved to free loopback ports through the configs' own variables),
HTTP requests to every ingress route, and the egress client
(examples/egress-client/client.py) against the egress gateway. Both
gateways must then stop with exit 0 on SIGTERM.

Needs `npm ci` in examples/nest-service (scripts/setup does it).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from checklib import Checks, parse_args

START_TIMEOUT_S = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(what, fn, proc, timeout=START_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if fn():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not up within {timeout} s")


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class Stack:
    def __init__(self, source, binary, logdir):
        self.source, self.binary, self.logdir = source, binary, logdir
        self.procs = []

    def spawn(self, name, argv, env):
        full = dict(os.environ)
        full.pop("PATTERNGATE_CONFIG", None)
        full.update(env)
        log = open(os.path.join(self.logdir, f"{name}.log"), "wb")
        p = subprocess.Popen(argv, env=full, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        p.name, p.logpath = name, log.name
        self.procs.append(p)
        return p

    def healthy(self, admin_port):
        r = subprocess.run([self.binary, "healthcheck", f"http://127.0.0.1:{admin_port}/readyz"],
                           capture_output=True, timeout=10)
        return r.returncode == 0

    def gateway(self, name, config, nest_port):
        port, admin = free_port(), free_port()
        p = self.spawn(name, [self.binary, "-c", os.path.join(self.source, "examples", config, "config.json")],
                       {"PATTERNGATE_LISTEN": f"127.0.0.1:{port}",
                        "PATTERNGATE_ADMIN_LISTEN": f"127.0.0.1:{admin}",
                        "ORDERS_ADDRESS": f"127.0.0.1:{nest_port}"})
        poll(f"{name} /readyz", lambda: self.healthy(admin), p)
        return p, port

    def dump_logs(self):
        for p in self.procs:
            print(f"---- {p.name} log ({p.logpath}):")
            sys.stdout.write(open(p.logpath, errors="replace").read()[-4000:])

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def check_ingress(c, base):
    status, headers, body = http("GET", f"{base}/orders/1")
    c.ok(status == 200 and json.loads(body)["item"] == "keyboard", "GET /orders/1", f"{status} {body!r}")
    c.ok(headers.get("X-Request-Id"), "responses carry X-Request-Id")
    status, headers, body = http("GET", f"{base}/orders?interval_ms=10")
    lines = [json.loads(l) for l in body.decode().splitlines() if l]
    c.ok(status == 200 and headers.get("Content-Type", "").startswith("application/x-ndjson")
         and [o["id"] for o in lines][:3] == [1, 2, 3], "GET /orders streams NDJSON", f"{status} {body!r}")
    status, _, body = http("POST", f"{base}/orders", {"item": "pen", "quantity": 3})
    created = json.loads(body) if status == 201 else {}
    c.ok(created.get("item") == "pen", "POST /orders answers 201 with the new order", f"{status} {body!r}")
    status, _, body = http("POST", f"{base}/orders/2/shipped")
    c.ok(status == 202 and body == b"", "POST /orders/2/shipped is an event (202)", f"{status} {body!r}")
    shipped = False
    for _ in range(50):
        status, _, body = http("GET", f"{base}/orders/2")
        shipped = status == 200 and json.loads(body).get("shipped") is True
        if shipped:
            break
        time.sleep(0.1)
    c.ok(shipped, "the event reached the service", body.decode(errors="replace"))
    status, _, body = http("GET", f"{base}/orders/999")
    err = json.loads(body) if body else {}
    c.ok(status == 404 and err.get("details", {}).get("statusCode") == 404,
         "a missing order is the service's 404, with its err as details", f"{status} {body!r}")
    status, _, body = http("GET", f"{base}/orders/abc")
    c.ok(status == 400, "a non-integer :id is a 400 from the gateway", f"{status} {body!r}")
    status, _, body = http("POST", f"{base}/sum", [1, 2, 3.5])
    c.ok(status == 200 and json.loads(body) == 6.5, "POST /sum", f"{status} {body!r}")
    status, _, _ = http("POST", f"{base}/v1/send/orders", {"pattern": {"cmd": "sum"}, "data": [1]})
    c.ok(status == 404, "the generic API is off in ingress", str(status))


def run(c, args, stack):
    nest_dir = os.path.join(args.source, "examples", "nest-service")
    if not c.ok(os.path.isdir(os.path.join(nest_dir, "node_modules", "@nestjs", "microservices")),
                "examples/nest-service has its npm packages (scripts/setup runs npm ci there)"):
        return
    nest_port = free_port()
    nest = stack.spawn("nest-service", ["node", os.path.join(nest_dir, "main.mjs")],
                       {"HOST": "127.0.0.1", "PORT": str(nest_port), "NO_COLOR": "1"})

    def nest_up():
        r = subprocess.run([args.binary, "call", "--timeout", "1000", f"127.0.0.1:{nest_port}",
                            '{"cmd":"sum"}', "[1,2]"], capture_output=True, text=True, timeout=10)
        return r.returncode == 0 and r.stdout.strip() == "3"
    poll("the example Nest service", nest_up, nest)
    c.ok(True, "the example Nest service answers {cmd:'sum'}")

    ingress, port = stack.gateway("ingress", "ingress", nest_port)
    check_ingress(c, f"http://127.0.0.1:{port}")

    egress, port = stack.gateway("egress", "egress", nest_port)
    client = subprocess.run([sys.executable, os.path.join(args.source, "examples", "egress-client", "client.py")],
                            env=dict(os.environ, GATEWAY_URL=f"http://127.0.0.1:{port}"),
                            capture_output=True, text=True, timeout=120)
    sys.stdout.write(client.stdout)
    c.ok(client.returncode == 0, "the egress client's calls all answered as expected", client.stderr)

    for p in (ingress, egress):
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        c.ok(rc == 0, f"{p.name} gateway exits 0 on SIGTERM", str(rc))
    nest.send_signal(signal.SIGTERM)
    try:
        nest.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def main():
    args = parse_args()
    c = Checks("examples")
    logdir = os.path.join(os.getcwd(), "packaging_examples_logs")
    os.makedirs(logdir, exist_ok=True)
    stack = Stack(args.source, args.binary, logdir)
    try:
        run(c, args, stack)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        c.ok(False, "the example stack ran", str(e))
    finally:
        if c.failed:
            stack.dump_logs()
        stack.stop_all()
    c.finish()


if __name__ == "__main__":
    main()
