"""Names of everything the testbed creates. Every name carries the run id, so that clean-up
finds objects by that tag alone (no state needed); interface names fit IFNAMSIZ."""

from __future__ import annotations

import re
import secrets

from .errors import TestbedError

TAG = "tb"  # every namespace, cgroup, pin and run directory starts with this
IFNAMSIZ = 15  # usable characters of a Linux interface name
RUN_ID_RE = re.compile(r"^[a-z0-9]{1,10}$")

# Interface-name prefixes inside our namespaces: the node side of a pod's veth is
# "p-<pod>", the fabric side of a node's veth is "n-<node>".
POD_IF_PREFIX = "p-"
NODE_IF_PREFIX = "n-"
MAX_POD_NAME = IFNAMSIZ - len(POD_IF_PREFIX)
MAX_NODE_NAME = IFNAMSIZ - len(NODE_IF_PREFIX)


def new_run_id() -> str:
    return secrets.token_hex(3)


def check_run_id(run_id: str) -> str:
    if not RUN_ID_RE.match(run_id):
        raise TestbedError(
            f"run id {run_id!r} is not valid: use 1-10 characters of a-z and 0-9"
        )
    return run_id


def run_prefix(run_id: str) -> str:
    """The tag every object of this run starts with."""
    return f"{TAG}-{run_id}-"


def fabric_netns(run_id: str) -> str:
    return f"{TAG}-{run_id}-fabric"


def node_netns(run_id: str, node: str) -> str:
    return f"{TAG}-{run_id}-n-{node}"


def pod_netns(run_id: str, pod: str) -> str:
    return f"{TAG}-{run_id}-p-{pod}"


def host_netns(run_id: str, host: str) -> str:
    """An extra host on the fabric (an attacker, a load generator): not a node, no pods."""
    return f"{TAG}-{run_id}-x-{host}"


HOST_IF_PREFIX = "x-"


def run_cgroup(run_id: str) -> str:
    """cgroup v2 directory (relative to the cgroup2 mount) holding every process of the run."""
    return f"{TAG}-{run_id}"


# cgroup levels below the run's: the BPF programs every pod needs attach once, to `pods`;
# those every captured proxy needs, once, to `proxies` (the ambient L7 proxies, which are
# reached by address and never captured, sit under `waypoints`)
def pods_cgroup(run_id: str) -> str:
    return f"{run_cgroup(run_id)}/pods"


def pod_cgroup(run_id: str, pod: str) -> str:
    return f"{pods_cgroup(run_id)}/{pod}"


def proxies_cgroup(run_id: str, captured: bool = True) -> str:
    return f"{run_cgroup(run_id)}/{'proxies' if captured else 'waypoints'}"


def proxy_cgroup(run_id: str, proxy: str, captured: bool = True) -> str:
    return f"{proxies_cgroup(run_id, captured)}/{proxy}"


def supervisor_cgroup(run_id: str) -> str:
    return f"{run_cgroup(run_id)}/supervisor"


def shells_cgroup(run_id: str) -> str:
    """The Mininet backend's node and switch shells (cluster/mininet_nodes.py)."""
    return f"{run_cgroup(run_id)}/mininet"


def spawner_cgroup(run_id: str) -> str:
    """Where the agent spawner runs while it forks the agents (cluster/spawner.py)."""
    return f"{run_cgroup(run_id)}/spawner"


# Each proxy runs as its own uid (so it can read only its own keys) and uses the same number
# as its Envoy --base-id (so hot-restart shared memory, /dev/shm/envoy_shared_memory_<id*10>,
# is tagged too). The ids of one run come from a block of PROXY_ID_BLOCK; live runs hold
# different blocks (idblocks.py claims them), so they never share a uid or shared memory.
PROXY_ID_BASE = 10_000_000
PROXY_ID_BLOCK = 1000
PROXY_ID_BLOCKS = 10_000


def proxy_id_block(block: int) -> int:
    """The first id of a block."""
    return PROXY_ID_BASE + block * PROXY_ID_BLOCK


def proxy_id(block: int, index: int) -> int:
    if not 0 <= index < PROXY_ID_BLOCK:
        raise TestbedError(f"a run holds at most {PROXY_ID_BLOCK} proxies")
    return proxy_id_block(block) + index


def block_of_id(proxy_id_value: int) -> int | None:
    """The block an id (a proxy uid, an Envoy base id) belongs to, None outside the range."""
    block, _ = divmod(proxy_id_value - PROXY_ID_BASE, PROXY_ID_BLOCK)
    return block if 0 <= block < PROXY_ID_BLOCKS and proxy_id_value >= PROXY_ID_BASE else None


def ifname(prefix: str, name: str) -> str:
    full = f"{prefix}{name}"
    if len(full) > IFNAMSIZ:
        raise TestbedError(f"interface name {full!r} is longer than {IFNAMSIZ} characters")
    return full


def run_id_of(name: str) -> str | None:
    """The run id carried by a tagged name such as 'tb-ab12cd-n-n1' or 'tb-ab12cd'."""
    m = re.match(rf"^{TAG}-([a-z0-9]{{1,10}})(-|$)", name)
    return m.group(1) if m else None
