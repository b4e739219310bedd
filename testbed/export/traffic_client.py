"""The traffic of one exported experiment's caller, run by a Kubernetes Job pod: the workload
agent's own open-loop client and long-lived connections (testbed/cluster/agent.py, shipped
beside this file in the same ConfigMap), then a short clean window, every record printed to
stdout as one JSON line, so the Job's log is the record file `testbed collect` reads.

Standard library only, like the agent. The pod is the testbed pod `<service>-<index>`, its
index the Job's completion index, so the flows are the same (pod, service) pairs as on one
machine. Lines: {"kind": "start"|"request"|"stream"|"clean"|"end", ...}; a request or clean
record is the agent's, with times as epochs."""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # python -I leaves the script's directory out
try:
    import agent  # in the pod: agent.py beside this file
except ImportError:  # in the repository
    from testbed.cluster import agent

START_LEAD = 0.5  # seconds between deciding the start and the first request


def parse_target(text):
    name, sep, url = text.partition("=")
    if not sep or not urllib.parse.urlsplit(url).hostname:
        raise argparse.ArgumentTypeError(f"expected SERVICE=URL, got {text!r}")
    return {"service": name, "url": url}


def wait_ready(targets, seconds, timeout=2.0):
    """Wait until every target answers 200 (the mesh and the workloads are up), at most
    `seconds`; returns the targets still failing."""
    pending = list(targets)
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
        pending = [t for t in pending if agent.call_once(t["url"], timeout)["status"] != 200]
        if pending:
            time.sleep(1.0)
    return pending


def _read(path, kind):
    with open(path) as f:
        return [dict(json.loads(line), kind=kind) for line in f if line.strip()]


def run(service, index, targets, rate, duration, interval, clean, timeout, out=sys.stdout):
    """Drive the traffic and print its records; returns how many requests failed."""
    agent.IDENTITY.update(pod=f"{service}-{index}", service=service)
    work = tempfile.mkdtemp(prefix="traffic-")
    start = time.time() + START_LEAD
    print(json.dumps({"kind": "start", "src": agent.IDENTITY["pod"], "start": start, "rate": rate,
                      "duration": duration, "targets": targets}), file=out, flush=True)
    jobs = [threading.Thread(target=agent.run_load,
                             args=(targets, rate, duration, start, f"{work}/requests", timeout)),
            threading.Thread(target=agent.run_streams,
                             args=(targets, interval, duration, start, f"{work}/streams", timeout))]
    for th in jobs:
        th.start()
    for th in jobs:
        th.join()
    records = _read(f"{work}/requests", "request") + _read(f"{work}/streams", "stream")
    if clean > 0:
        agent.run_load(targets, rate, clean, time.time() + START_LEAD, f"{work}/clean", timeout)
        records += _read(f"{work}/clean", "clean")
    for r in records:
        print(json.dumps(r), file=out)
    failed = sum(r["kind"] == "request" and r["status"] != 200 for r in records)
    print(json.dumps({"kind": "end", "src": agent.IDENTITY["pod"], "end": time.time(),
                      "requests": sum(r["kind"] == "request" for r in records), "failed": failed}),
          file=out, flush=True)
    return failed


def main(argv=None):
    ap = argparse.ArgumentParser(description="testbed traffic for one caller pod (a Kubernetes Job)")
    ap.add_argument("--service", required=True, help="the calling service; the pod is <service>-<index>")
    ap.add_argument("--index", type=int, default=None, help="default: $JOB_COMPLETION_INDEX")
    ap.add_argument("--target", dest="targets", type=parse_target, action="append", required=True,
                    metavar="SERVICE=URL", help="a service this one calls (repeatable)")
    ap.add_argument("--rate", type=float, required=True, help="requests per second per target, open loop")
    ap.add_argument("--duration", type=float, required=True, help="seconds of traffic")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between long-lived requests")
    ap.add_argument("--clean", type=float, default=3.0, help="seconds of traffic in the clean window after")
    ap.add_argument("--timeout", type=float, default=2.0, help="a request's timeout")
    ap.add_argument("--wait", type=float, default=120.0, help="at most this long for the targets to answer")
    args = ap.parse_args(argv)
    index = args.index if args.index is not None else int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
    late = wait_ready(args.targets, args.wait, args.timeout)
    if late:
        print(json.dumps({"kind": "warning", "message": "not answering before the start: "
                          + ", ".join(t["service"] for t in late)}), flush=True)
    run(args.service, index, args.targets, args.rate, args.duration, args.interval, args.clean, args.timeout)
    return 0  # failed requests are results, not a failed Job


if __name__ == "__main__":
    sys.exit(main())
