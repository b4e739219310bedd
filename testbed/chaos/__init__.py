"""The chaos stage: faults aimed at workloads (a pod, a service, a node), never at a proxy by
name; each architecture resolves "the proxy serving X" its own way, which is what makes one
experiment comparable across architectures. The kinds are listed once in `kinds.py`; one
module per family of faults; `registry.py` maps each kind to its class. Each fault has
inject(), revert() and describe()."""
