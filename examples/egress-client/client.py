#!/usr/bin/env python3
"""An egress example: a plain Python app (standard library only, no Nest, no
Nest client) that calls the NestJS service through patterngate, its sidecar
on loopback. patterngate turns each HTTP request into a Nest TCP packet.

    GATEWAY_URL   where patterngate listens (default http://127.0.0.1:8080)
    INTERVAL_S    if set, repeat the calls every INTERVAL_S seconds forever
                  (a long-running app, as in deploy/overlays/egress)

Calls the generic API (POST /v1/send/orders, /v1/emit/orders?fanout=all,
with ?reply=ndjson for a stream read line by line as values arrive) and one
route (GET /orders/:id), prints what it got, and exits 0 when every answer
was as expected, else 1.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080").rstrip("/")


def request(method, path, body=None):
    """(status, parsed JSON or None, raw bytes)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(GATEWAY + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    return status, (json.loads(raw) if raw.strip() else None), raw


def send(pattern, data):
    return request("POST", "/v1/send/orders", {"pattern": pattern, "data": data})


def wait_for_gateway(seconds=60):
    """The sidecar may start a moment after the app: retry until it answers."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            status, value, _ = send({"cmd": "sum"}, [1, 2, 3])
            if status == 200:
                return value
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"egress-client: no answer from {GATEWAY} within {seconds} s")
        time.sleep(0.5)


def stream_orders():
    """Reads an Observable's values one NDJSON line at a time."""
    req = urllib.request.Request(GATEWAY + "/v1/send/orders?reply=ndjson", method="POST",
                                 data=json.dumps({"pattern": "orders.list",
                                                  "data": {"interval_ms": 100}}).encode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        for line in resp:
            yield json.loads(line)


def main():
    failures = []

    def expect(what, cond, got):
        print(f"{'ok  ' if cond else 'FAIL'} {what}: {got}", flush=True)
        if not cond:
            failures.append(what)

    total = wait_for_gateway()
    expect("sum [1,2,3]", total == 6, total)
    status, order, _ = request("GET", "/orders/2")
    expect("GET /orders/2 (a route)", status == 200 and order.get("item") == "monitor", order)
    streamed = [o["id"] for o in stream_orders()]
    expect("orders.list streamed as NDJSON", streamed[:3] == [1, 2, 3], streamed)
    # fanout=all: every replica of the service gets the event (each keeps its
    # orders in memory: deploy/overlays/egress runs three behind one name)
    status, _, raw = request("POST", "/v1/emit/orders?fanout=all",
                             {"pattern": "order_shipped", "data": {"id": 3}})
    expect("emit order_shipped (event, 202)", status == 202, status)
    for _ in range(50):  # events have no reply: poll until the service saw it
        status, order, _ = send("orders.get", {"id": 3})
        if order and order.get("shipped"):
            break
        time.sleep(0.1)
    expect("order 3 shipped", status == 200 and order.get("shipped") is True, order)
    status, err, _ = send("orders.get", {"id": 999})
    expect("a missing order is the service's 404", status == 404 and err.get("error") == "upstream_error"
           and err.get("details", {}).get("statusCode") == 404, err)
    print("egress-client: " + ("all calls answered as expected" if not failures
                               else f"{len(failures)} failed"), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    interval = float(os.environ.get("INTERVAL_S") or 0)
    rc = main()
    while interval > 0:
        time.sleep(interval)
        rc = main()
    sys.exit(rc)
