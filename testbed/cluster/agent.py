"""The workload agent: the app inside every pod. Standard library only, started as a script
(`python -I -S agent.py ...`) so it is ready in tens of milliseconds.

- An HTTP server on the service's port whose answer names the pod (and the peer it saw).
- A control socket (a Unix socket in the run directory, reachable from the root namespace
  without any network) through which the testbed drives the pod's client: every request
  the client makes starts inside the pod's namespace and cgroup, as the app's own would.

Control protocol: one JSON object per line in, one per line out.
  {"op": "ping"}                                   -> {"ok": true, "pod": ...}
  {"op": "call", "url": U, "count": N, "timeout": T} -> {"ok": true, "results": [...]}
each result: {"status": int|null, "pod": str|null, "peer": str|null, "latency_ms": float,
              "error": str|null}
  {"op": "load", "targets": [{"service": S, "url": U}, ...], "rate": R, "duration": D,
   "start": EPOCH, "out": FILE}                     -> {"ok": true} at once; then, from
   `start`, R requests per second to each target for D seconds, open loop (each request
   leaves on schedule in its own thread, whatever happened to the previous ones), one JSON
   record per request in FILE, and FILE.done when the last one has finished:
   {"t": scheduled epoch, "src": pod, "dst": S, "pod", "status", "latency_ms", "error"}
"""

import argparse
import http.client
import json
import os
import socketserver
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IDENTITY = {}


class AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "testbed-agent"
    # headers and body are two writes: without TCP_NODELAY, Nagle's algorithm holds the body
    # until the client's delayed ACK (~40 ms) on every kept-alive request
    disable_nagle_algorithm = True

    def do_GET(self):  # noqa: N802 - http.server's naming
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        body = json.dumps(dict(IDENTITY, peer=peer, path=self.path)).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Testbed-Pod", IDENTITY["pod"])
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet: the traffic stage keeps its own records
        pass


class AppServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def call_once(url, timeout):
    u = urllib.parse.urlsplit(url)
    t0 = time.monotonic()
    result = {"status": None, "pod": None, "peer": None, "error": None}
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.request("GET", u.path or "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        data = resp.read()
        result["status"] = resp.status
        result["pod"] = resp.getheader("X-Testbed-Pod")
        if resp.status == 200:
            try:
                result["peer"] = json.loads(data).get("peer")
            except ValueError:
                pass
    except OSError as exc:
        result["error"] = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    result["latency_ms"] = round((time.monotonic() - t0) * 1000, 3)
    return result


MAX_IN_FLIGHT = 256  # open loop, but bounded: beyond this a request is recorded as not sent


def run_load(targets, rate, duration, start, out, timeout=2.0):
    lock, records, threads = threading.Lock(), [], []
    slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
    schedule = sorted((start + k / rate, t["service"], t["url"]) for t in targets
                      for k in range(int(duration * rate)))

    def fire(when, service, url):
        try:
            r = call_once(url, timeout)
        finally:
            slots.release()
        with lock:
            records.append({"t": when, "src": IDENTITY["pod"], "dst": service, "pod": r["pod"],
                            "status": r["status"], "latency_ms": r["latency_ms"], "error": r["error"]})

    for when, service, url in schedule:
        delay = when - time.time()
        if delay > 0:
            time.sleep(delay)  # the schedule itself: requests leave at their time
        if not slots.acquire(blocking=False):
            with lock:
                records.append({"t": when, "src": IDENTITY["pod"], "dst": service, "pod": None, "status": None,
                                "latency_ms": 0.0, "error": "generator-overload"})
            continue
        th = threading.Thread(target=fire, args=(when, service, url), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    with open(out, "w") as f:
        for r in sorted(records, key=lambda r: r["t"]):
            f.write(json.dumps(r) + "\n")
    with open(out + ".done", "w") as f:
        f.write(str(len(records)))


class ControlHandler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            try:
                req = json.loads(line)
                op = req.get("op")
                if op == "ping":
                    resp = {"ok": True, "pod": IDENTITY["pod"], "pid": os.getpid()}
                elif op == "call":
                    count = int(req.get("count", 1))
                    timeout = float(req.get("timeout", 2.0))
                    resp = {"ok": True, "results": [call_once(req["url"], timeout) for _ in range(count)]}
                elif op == "load":
                    args = (req["targets"], float(req["rate"]), float(req["duration"]), float(req["start"]),
                            req["out"], float(req.get("timeout", 2.0)))
                    threading.Thread(target=run_load, args=args, daemon=True).start()
                    resp = {"ok": True}
                else:
                    resp = {"ok": False, "error": f"unknown op {op!r}"}
            except Exception as exc:  # noqa: BLE001 - answer, never die
                resp = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.wfile.write(json.dumps(resp).encode() + b"\n")
            self.wfile.flush()


class ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def main(argv=None):
    ap = argparse.ArgumentParser(description="testbed workload agent")
    ap.add_argument("--run", required=True, help="run id (a tag, so clean-up can find this process)")
    ap.add_argument("--pod", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--control", required=True, help="path of the control Unix socket")
    args = ap.parse_args(argv)
    IDENTITY.update(pod=args.pod, service=args.service, node=args.node)

    app = AppServer(("0.0.0.0", args.port), AppHandler)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    try:
        os.unlink(args.control)
    except FileNotFoundError:
        pass
    control = ControlServer(args.control, ControlHandler)  # bound last: answering = ready
    os.chmod(args.control, 0o600)
    control.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
