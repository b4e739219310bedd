"""The agent spawner: one process per run that imports the workload agent once and forks a
child per pod. The child joins the pod's cgroup and network namespace, becomes a session
of its own and runs the agent's `main()`: no interpreter start-up, no imports, no exec per
pod (each of those cost ~50 ms of CPU, 10 s for 200 pods on two cores), and the agents
share the interpreter's pages with each other (copy-on-write) instead of holding ~10 MiB
each.

Forking is safe because the spawner is single-threaded (a fork of a threaded process may
only exec). It is started as `python -m testbed.cluster.spawner --run ID` in the run's
cgroup: the `--run` tag on its command line, which the agents inherit, lets `testbed
clean` find it and them (procs.run_tag). Standard library only.

Input: a file of requests, one JSON object per line (`--requests FILE`, written by the
testbed before it starts the spawner, so that it can wire the pods' links meanwhile):
  {"pod": NAME, "netns": PATH, "cgroup_procs": PATH, "log": PATH,
   "agent": {"pod", "service", "node", "port", "control"}}     (agent.serve's arguments)
Output: one line per agent on stdout, {"pod": NAME, "pid": N}, then the spawner exits; its
agents live on, like any daemon's children, and start answering on their control sockets.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import signal
import sys
import traceback

CLONE_NEWNET = 0x40000000


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _child(req: dict, serve) -> int:
    """In the forked child: become the pod's agent. Never returns to the spawner's loop."""
    os.setsid()  # a Ctrl-C at the terminal reaches the testbed, which tears down in order
    # the signal dispositions of a fresh interpreter
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, 65536)  # the spawner's pipes, and anything else it held
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the spawner's buffered stdin is not ours
    with open(req["cgroup_procs"], "w") as f:  # the cgroup first: every hook applies from here
        f.write("0")
    _setns(req["netns"])
    gc.enable()
    return serve(**req["agent"])


def spawn(requests, out, serve) -> None:
    for line in requests:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(req, serve) or 0
            except BaseException:  # noqa: BLE001 - the child must never return to the loop
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        out.write(json.dumps({"pod": req["pod"], "pid": pid}) + "\n")
        out.flush()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="fork the run's workload agents")
    ap.add_argument("--run", required=True, help="run id (a tag, so clean-up can find this process and its agents)")
    ap.add_argument("--requests", required=True, help="one JSON request per line, one agent each")
    args = ap.parse_args(argv)
    import encodings.idna  # noqa: F401 - what the agent's client imports on its first call, imported once
    import unicodedata  # noqa: F401

    from . import agent  # imported once, here; every agent is a fork of this process

    with open(args.requests) as f:
        requests = f.readlines()
    gc.collect()
    gc.freeze()  # keep the collector of each agent off the pages it shares with the others
    gc.disable()
    spawn(requests, sys.stdout, agent.serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
