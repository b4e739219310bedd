"""The testbed's end of the supervisor's control socket (see supervisor.py)."""

from __future__ import annotations

import json
import socket

from ..errors import TestbedError


def request(sock_path: str, message: dict, timeout: float = 60.0):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock_path)
            s.sendall(json.dumps(message).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError as exc:
        raise TestbedError(f"the proxy supervisor does not answer ({sock_path}): {exc}") from None
    resp = json.loads(buf)
    if not resp.get("ok"):
        raise TestbedError(f"proxy supervisor: {resp.get('error')}")
    return resp["result"]
