"""The testbed's side of the agent's control socket (see agent.py for the protocol)."""

from __future__ import annotations

from .. import jsonline

AGENT_SCRIPT = __file__.replace("agentctl.py", "agent.py")


class AgentError(Exception):
    pass


def request(sock_path: str, message: dict, timeout: float = 30.0) -> dict:
    resp = jsonline.request(sock_path, message, timeout)
    if not resp.get("ok"):
        raise AgentError(f"agent at {sock_path}: {resp.get('error')}")
    return resp


def ping(sock_path: str) -> dict:
    return request(sock_path, {"op": "ping"}, timeout=2.0)


def call(sock_path: str, url: str, count: int = 1, timeout: float = 2.0) -> list[dict]:
    """Make `count` HTTP GETs to `url` from inside the agent's pod; one result each."""
    resp = request(sock_path, {"op": "call", "url": url, "count": count, "timeout": timeout},
                   timeout=count * (timeout + 1) + 5)
    return resp["results"]
