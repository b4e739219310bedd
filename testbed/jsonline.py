"""One JSON object per line over a Unix socket: how the testbed talks to its workload agents
and to the proxy supervisor (both answer {"ok": true, ...} or {"ok": false, "error": ...})."""

from __future__ import annotations

import json
import socket


def request(sock_path: str, message: dict, timeout: float) -> dict:
    """Send one request, return the decoded answer (raises OSError when nobody answers)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(json.dumps(message).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"{sock_path} closed the connection without an answer")
            buf += chunk
    return json.loads(buf)
