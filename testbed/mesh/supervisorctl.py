"""The testbed's end of the supervisor's control socket (see supervisor.py)."""

from __future__ import annotations

from .. import jsonline
from ..errors import TestbedError


def request(sock_path: str, message: dict, timeout: float = 60.0):
    try:
        resp = jsonline.request(sock_path, message, timeout)
    except OSError as exc:
        raise TestbedError(f"the proxy supervisor does not answer ({sock_path}): {exc}") from None
    if not resp.get("ok"):
        raise TestbedError(f"proxy supervisor: {resp.get('error')}")
    return resp["result"]
