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
  {"op": "streams", "targets": [...], "interval": I, "duration": D, "start": EPOCH,
   "out": FILE}                                    -> {"ok": true} at once; then one
   long-lived keep-alive connection per target, a request on it every I seconds (closed
   loop: one at a time), reconnecting when it breaks. FILE gets one JSON record per break
   and one summary per target, then FILE.done:
   {"t": epoch, "src", "dst", "event": "drained"|"refused"|"closed"|"reset"|"timeout", "served":
    requests the connection carried, "status": the answer's or null, "error"}   drained: the
    server answered 200, then ended it (Connection: close); refused: any other answer, then
    Connection: close (the request was lost); closed: a FIN instead of an answer; reset: it
    died under a request
   {"t": end epoch, "src", "dst", "event": "end", "opened": connections, "requests", "failed"}
"""

import argparse
import http.client
import json
import os
import selectors
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


class Recorder:
    """Records go to `out` as they happen, one JSON line each, flushed at once, so that what
    was measured survives a run cut short (readers sort them by time). `finish()` waits for
    the senders, then marks the file done (`out`.done, holding the count)."""

    def __init__(self, out):
        self.out, self.count = out, 0
        self.lock = threading.Lock()
        self.file = open(out, "a", buffering=1)  # noqa: SIM115 - open for the whole load

    def add(self, record):
        with self.lock:
            self.file.write(json.dumps(record) + "\n")
            self.count += 1

    def finish(self, threads):
        for th in threads:
            th.join()
        with self.lock:
            self.file.close()
        with open(self.out + ".done", "w") as f:
            f.write(str(self.count))


MAX_IN_FLIGHT = 256  # open loop, but bounded: beyond this a request is recorded as not sent


def run_load(targets, rate, duration, start, out, timeout=2.0):
    recorder, threads = Recorder(out), []
    slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
    schedule = sorted((start + k / rate, t["service"], t["url"]) for t in targets
                      for k in range(int(duration * rate)))

    def fire(when, service, url):
        try:
            r = call_once(url, timeout)
        finally:
            slots.release()
        recorder.add({"t": when, "src": IDENTITY["pod"], "dst": service, "pod": r["pod"],
                      "status": r["status"], "latency_ms": r["latency_ms"], "error": r["error"]})

    for when, service, url in schedule:
        delay = when - time.time()
        if delay > 0:
            time.sleep(delay)  # the schedule itself: requests leave at their time
        if not slots.acquire(blocking=False):
            recorder.add({"t": when, "src": IDENTITY["pod"], "dst": service, "pod": None, "status": None,
                          "latency_ms": 0.0, "error": "generator-overload"})
            continue
        th = threading.Thread(target=fire, args=(when, service, url), daemon=True)
        th.start()
        threads.append(th)
    recorder.finish(threads)


def keep_alive(service, url, interval, start, end, timeout, emit):
    """One long-lived connection's life, as an app with a persistent client would see it."""
    u = urllib.parse.urlsplit(url)
    conn, served, opened, requests, failed = None, 0, 0, 0, 0
    k = 0
    while (when := start + k * interval) < end:
        k += 1
        delay = when - time.time()
        if delay > 0:
            time.sleep(delay)
        requests += 1
        if conn is None:
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
            try:
                conn.connect()
            except OSError:
                failed += 1
                conn.close()
                conn = None
                continue
            opened, served = opened + 1, 0
        event, error, status = None, None, None
        try:
            conn.request("GET", u.path or "/")
            resp = conn.getresponse()
            resp.read()
            served, status = served + 1, resp.status
            failed += status != 200
            if resp.will_close:  # only a 200 then Connection: close is a drain; any other answer lost the request
                event, error = ("drained", None) if status == 200 else ("refused", f"HTTP {status}")
        except TimeoutError as exc:
            event, error, failed = "timeout", str(exc) or "timed out", failed + 1
        except http.client.RemoteDisconnected as exc:  # a FIN instead of an answer
            event, error, failed = "closed", str(exc), failed + 1
        except (OSError, http.client.HTTPException) as exc:
            event, error, failed = "reset", f"{type(exc).__name__}: {exc}", failed + 1
        if event:
            emit({"t": time.time(), "src": IDENTITY["pod"], "dst": service, "event": event, "served": served,
                  "status": status, "error": error})
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    emit({"t": end, "src": IDENTITY["pod"], "dst": service, "event": "end", "opened": opened,
          "requests": requests, "failed": failed})


def run_streams(targets, interval, duration, start, out, timeout=2.0):
    recorder = Recorder(out)
    threads = [threading.Thread(target=keep_alive, args=(t["service"], t["url"], interval, start, start + duration,
                                                          timeout, recorder.add), daemon=True) for t in targets]
    for th in threads:
        th.start()
    recorder.finish(threads)


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
                elif op == "streams":
                    args = (req["targets"], float(req["interval"]), float(req["duration"]), float(req["start"]),
                            req["out"], float(req.get("timeout", 2.0)))
                    threading.Thread(target=run_streams, args=args, daemon=True).start()
                    resp = {"ok": True}
                else:
                    resp = {"ok": False, "error": f"unknown op {op!r}"}
            except Exception as exc:  # noqa: BLE001 - answer, never die
                resp = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.wfile.write(json.dumps(resp).encode() + b"\n")
            self.wfile.flush()


class ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def serve(pod, service, node, port, control):
    """Answer HTTP on `port` and commands on the `control` socket, one thread for both (each
    request gets its own): the spawner's forks run this directly."""
    IDENTITY.update(pod=pod, service=service, node=node)
    app = AppServer(("0.0.0.0", port), AppHandler)
    try:
        os.unlink(control)
    except FileNotFoundError:
        pass
    ctl = ControlServer(control, ControlHandler)  # bound last: answering = ready
    os.chmod(control, 0o600)
    with selectors.DefaultSelector() as sel:
        for server in (app, ctl):
            sel.register(server, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                key.fileobj.handle_request()  # readable: accepts at once, the handler runs in a thread


def main(argv=None):
    ap = argparse.ArgumentParser(description="testbed workload agent")
    ap.add_argument("--run", required=True, help="run id (a tag, so clean-up can find this process)")
    ap.add_argument("--pod", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--control", required=True, help="path of the control Unix socket")
    args = ap.parse_args(argv)
    serve(args.pod, args.service, args.node, args.port, args.control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
