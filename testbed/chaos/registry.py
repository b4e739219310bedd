"""Each fault kind (kinds.py) and the class that injects and reverts it. Explicit, no import
side effects: a kind without a class, or a class without a kind, fails here at import."""

from __future__ import annotations

from ..experiment import FaultSpec
from .base import ChaosContext, Fault
from .bypass import Bypass
from .config_faults import ConfigReject, ConfigSetting
from .identity import IdentityCompromise
from .kinds import KINDS
from .noisy import NoisyNeighbour
from .packet_faults import Delay, Drop, TcpReset
from .proxy_faults import ProxyCrash, ProxyHang, Upgrade
from .wasm_fault import WasmExtension

FAULTS: dict[str, type[Fault]] = {cls.kind: cls for cls in (
    ProxyCrash, ProxyHang, Upgrade, IdentityCompromise, WasmExtension, ConfigSetting, ConfigReject, NoisyNeighbour,
    Bypass, Drop, TcpReset, Delay)}
if set(FAULTS) != set(KINDS):
    raise ImportError(f"fault kinds without a class: {sorted(set(KINDS) - set(FAULTS))}; "
                      f"classes without a kind: {sorted(set(FAULTS) - set(KINDS))}")


class NotApplicable(Fault):
    """A fault that acts on proxies, in an architecture without any (`none`): nothing is
    injected, and the journal says why instead of reporting a blast radius of zero."""

    kind = "not-applicable"

    def __init__(self, spec: FaultSpec, ctx: ChaosContext, index: int = 0, why: str | None = None):
        super().__init__(spec, ctx, index)
        self.kind = spec.kind
        self.details = {"not_applicable": why or f"{spec.kind} acts on proxies, and architecture {ctx.arch} has no "
                                                 "proxy"}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.spec.kind}: not applicable ({self.details['not_applicable']})"


def make_fault(spec: FaultSpec, ctx: ChaosContext, index: int = 0) -> Fault:
    """`index`: the fault's place in the experiment, which names what it creates."""
    if ctx.mesh is None and KINDS[spec.kind].needs_proxy:
        return NotApplicable(spec, ctx, index)
    fault = FAULTS[spec.kind](spec, ctx, index)
    if KINDS[spec.kind].needs_proxy and not fault.proxies:  # e.g. `proxy: l7` where no L7 proxy serves the target
        return NotApplicable(spec, ctx, index, f"no proxy of {ctx.arch} serves {spec.target.describe()}")
    return fault
