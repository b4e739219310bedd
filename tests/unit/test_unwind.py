"""Teardown that goes on past a failing step and reports every failure, and that no signal
abandons: the pieces every stage and command tears down with."""

from __future__ import annotations

import os
import signal

import pytest

from testbed import signals
from testbed.signals import Attempts, TeardownError, Unwind


def test_every_step_runs_in_reverse_and_all_failures_are_reported():
    done = []

    def fail(what):
        done.append(what)
        raise RuntimeError(f"{what} broke")

    with pytest.raises(TeardownError) as err:
        with Unwind() as u:
            u.callback(done.append, "first")
            u.callback(fail, "second")
            u.callback(done.append, "third")
            u.callback(fail, "fourth")
    assert done == ["fourth", "third", "second", "first"]
    assert "fourth broke" in str(err.value) and "second broke" in str(err.value)
    assert "testbed clean --run ID" in str(err.value)


def test_a_teardown_failure_rides_on_the_error_that_caused_the_teardown():
    with pytest.raises(ValueError) as err:
        with Unwind() as u:
            u.callback(lambda: (_ for _ in ()).throw(RuntimeError("could not delete")))
            raise ValueError("the build failed")
    assert any("could not delete" in n for n in err.value.__notes__)


def test_a_signal_during_teardown_is_held_until_it_is_done():
    """SIGTERM arrives in the middle of a teardown step: every step still runs, and the
    signal is raised once the teardown has finished."""
    done = []
    with signals.handled():
        with pytest.raises(signals.Interrupted) as err:
            with Unwind() as u:
                u.callback(done.append, "last")
                u.callback(lambda: (os.kill(os.getpid(), signal.SIGTERM), done.append("after the signal")))
        assert err.value.signum == signal.SIGTERM and err.value.exit_code == 143
    assert done == ["after the signal", "last"]


def test_the_first_signal_raises_and_later_ones_do_not_abandon_what_follows():
    done = []
    with signals.handled():
        with pytest.raises(signals.Interrupted) as err:
            with Unwind() as u:
                u.callback(done.append, "torn down")
                u.callback(lambda: os.kill(os.getpid(), signal.SIGHUP))  # a second signal, mid-teardown
                os.kill(os.getpid(), signal.SIGINT)
        assert err.value.signum == signal.SIGINT
    assert done == ["torn down"]


def test_attempts_go_on_and_raise_once():
    with pytest.raises(TeardownError) as err:
        with Attempts() as steps:
            steps.attempt("deleting a", lambda: 1 / 0)
            assert steps.attempt("deleting b", lambda: 42) == 42
            steps.attempt("deleting c", lambda: [][1])
    assert len(err.value.errors) == 2 and err.value.errors[0].startswith("deleting a")
