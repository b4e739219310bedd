"""Signals, and the teardown that no signal may abandon.

The CI runner, `timeout` and systemd stop a process with SIGTERM (a closed terminal sends
SIGHUP), not Ctrl-C. Inside `handled()`, SIGINT, SIGTERM and SIGHUP all raise `Interrupted`
in the main thread, so every command unwinds the same way: faults reverted, stages torn
down, what was measured written, exit status 128 + the signal (130, 143, 129).

Teardown runs `shielded()`: a signal arriving while it runs is remembered, not raised, so
a second Ctrl-C or SIGTERM cannot leave half a cluster behind. `Unwind` is the stack every
command composes its stages on: it tears down in reverse, shielded, past a failing step,
and reports every failure at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

from .errors import TestbedError

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A signal asked the command to stop."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class TeardownError(TestbedError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("teardown could not finish every step:\n  " + "\n  ".join(errors) +
                         "\n(`testbed clean --run ID` removes what is left)")


class _State:
    owner = os.getpid()
    shield = 0
    pending: int | None = None
    installed = False
    fired = False  # the first signal was raised: from now on everything is teardown


def _handler(signum, frame) -> None:
    if os.getpid() != _State.owner:  # a forked child that has not exec'd yet
        os._exit(128 + signum)
    if _State.shield or _State.fired:
        _State.pending = _State.pending or signum
        return
    _State.fired = True
    raise Interrupted(signum)


def ignore_from_now() -> None:
    """The command is exiting after a signal: later ones must not change how it ends."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into `Interrupted` for the body (main thread only;
    nested uses are no-ops)."""
    if _State.installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.owner = os.getpid()
    old = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    _State.installed = True
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _State.installed = _State.fired = False
        _State.pending = None


class shielded:  # noqa: N801 - used like a function: `with shielded():`
    """Hold signals while the body runs; one that arrived is raised at the end, unless an
    exception (e.g. the first signal) is already on its way (`in_flight`)."""

    def __init__(self, in_flight: bool = False):
        self.in_flight = in_flight

    def __enter__(self):
        _State.shield += 1
        return self

    def __exit__(self, exc_type, exc, tb):
        _State.shield -= 1
        if _State.shield == 0 and _State.pending is not None and not _State.fired:
            signum, _State.pending = _State.pending, None
            if exc is None and not self.in_flight:
                _State.fired = True
                raise Interrupted(signum)
        return False


def _describe(fn: Callable) -> str:
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{type(owner).__name__}.{fn.__name__}" if owner is not None else name


class Unwind:
    """Callbacks undone in reverse order, shielded from signals, every one run even when
    an earlier one fails; the failures are reported together at the end (on top of any
    exception already in flight, as a note)."""

    def __init__(self):
        self._callbacks: list[tuple[Callable, tuple, dict]] = []

    def callback(self, fn: Callable, *args, **kwargs) -> Callable:
        self._callbacks.append((fn, args, kwargs))
        return fn

    def pop_all(self) -> None:
        """Success: keep what was built (nothing is undone)."""
        self._callbacks = []

    def __enter__(self) -> Unwind:
        return self

    def close(self) -> None:
        self.__exit__(None, None, None)

    def __exit__(self, exc_type, exc, tb) -> bool:
        errors = []
        with shielded(in_flight=exc is not None):
            while self._callbacks:
                fn, args, kwargs = self._callbacks.pop()
                try:
                    fn(*args, **kwargs)
                except Exception as err:  # noqa: BLE001 - every step runs; all are reported
                    errors.append(f"{_describe(fn)}: {err}")
        if errors:
            if exc is None:
                raise TeardownError(errors)
            exc.add_note("teardown also failed: " + "; ".join(errors))
        return False


class Attempts:
    """The steps of a sweep: each is tried, a failure is noted and the sweep goes on; `done()`
    raises once with every failure. Shielded, like any teardown."""

    def __init__(self):
        self.errors: list[str] = []
        self._shield = shielded()

    def __enter__(self) -> Attempts:
        self._shield.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._shield.in_flight = exc is not None
        self._shield.__exit__(exc_type, exc, tb)
        if self.errors and exc is None:
            raise TeardownError(self.errors)
        return False

    def attempt(self, what: str, fn: Callable, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - noted, and the sweep goes on
            self.errors.append(f"{what}: {err}")
            return None
