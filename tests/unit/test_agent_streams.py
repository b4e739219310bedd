"""The agent's long-lived connection against a local server that answers as we script it: only
a 200 followed by Connection: close is a drain. Loopback only, no namespace, no root."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testbed.cluster import agent


class Scripted(BaseHTTPRequestHandler):
    """1st request: 200 kept alive; 2nd: 503 and close; 3rd: 200 and close; then 200s kept alive."""

    protocol_version = "HTTP/1.1"
    count = 0

    def do_GET(self):  # noqa: N802 - http.server's naming
        Scripted.count += 1
        status, close = {2: (503, True), 3: (200, True)}.get(Scripted.count, (200, False))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_non_200_that_closes_the_connection_is_refused_not_drained(monkeypatch):
    monkeypatch.setitem(agent.IDENTITY, "pod", "a-0")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events = []
    try:
        start = time.time()
        agent.keep_alive("db", f"http://127.0.0.1:{server.server_port}/", 0.02, start, start + 0.2, 2.0,
                         events.append)
    finally:
        server.shutdown()
        server.server_close()
    assert [(e["event"], e.get("status")) for e in events[:-1]] == [("refused", 503), ("drained", 200)]
    assert events[0]["error"] == "HTTP 503" and events[1]["error"] is None
    assert events[-1]["event"] == "end" and events[-1]["opened"] == 3 and events[-1]["failed"] == 1
