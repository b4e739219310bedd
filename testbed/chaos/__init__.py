"""The chaos stage: faults aimed at workloads (a pod, a service, a node), never at a proxy by
name; each architecture resolves "the proxy serving X" its own way, which is what makes one
experiment comparable across architectures. One module per fault kind; each fault has
inject(), revert() and describe()."""

from .base import FAULTS, Fault, make_fault  # noqa: F401
