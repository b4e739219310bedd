"""The traffic Jobs' client (testbed/export/traffic_client.py) as a pod runs it: from the
ConfigMap's flat layout (agent.py beside traffic.py), against a real agent on loopback,
printing one JSON record per line: what `testbed collect` reads."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest

from testbed.cluster import agent
from testbed.export import k8s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def configmap(tmp_path):
    """The two files as the ConfigMap mounts them."""
    shutil.copy(agent.__file__, tmp_path / "agent.py")
    shutil.copy(k8s.TRAFFIC_CLIENT, tmp_path / "traffic.py")
    return tmp_path


@pytest.fixture
def server(configmap):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(configmap / "agent.py"), "--run", "t", "--pod",
                             "cart-5d9-x1", "--service", "cart", "--node", "n2", "--port", str(port),
                             "--control", str(configmap / "agent.sock")])
    deadline = time.monotonic() + 10
    while not (configmap / "agent.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_a_job_pod_prints_its_records(configmap, server):
    r = subprocess.run([sys.executable, "-I", "-S", str(configmap / "traffic.py"), "--service", "frontend",
                        "--target", f"cart=http://127.0.0.1:{server}/", "--rate", "10", "--duration", "1",
                        "--clean", "0.5", "--wait", "5"], env={"JOB_COMPLETION_INDEX": "1"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    kinds = [x["kind"] for x in lines]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert lines[0]["src"] == "frontend-1"  # <service>-<completion index>: the testbed's pod name
    requests = [x for x in lines if x["kind"] == "request"]
    assert len(requests) == 10 and all(x["status"] == 200 and x["pod"] == "cart-5d9-x1" for x in requests)
    assert {x["src"] for x in requests} == {"frontend-1"} and {x["dst"] for x in requests} == {"cart"}
    assert requests[0]["t"] == pytest.approx(lines[0]["start"])  # scheduled epochs, from the start
    assert [x["event"] for x in lines if x["kind"] == "stream"] == ["end"]  # the long-lived one never broke
    assert len([x for x in lines if x["kind"] == "clean"]) == 5
    assert lines[-1]["requests"] == 10 and lines[-1]["failed"] == 0


def test_bad_targets_are_refused(configmap):
    r = subprocess.run([sys.executable, "-I", "-S", str(configmap / "traffic.py"), "--service", "frontend",
                        "--target", "cart", "--rate", "1", "--duration", "1"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "expected SERVICE=URL" in r.stderr
