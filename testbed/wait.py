"""Wait on conditions, never on sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import WaitTimeout

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str],
             interval: float = 0.01) -> T:
    """Poll `predicate` until it returns something truthy and return that; raise WaitTimeout
    naming `what` after `timeout` seconds. Exceptions from the predicate count as "not yet"
    and the last one is quoted in the timeout. `what` may be a callable, for a description
    that reflects the state at the time out."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the predicate may fail until ready
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            what = what() if callable(what) else what
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)
