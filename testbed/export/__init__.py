"""Carrying an experiment to a real Kubernetes cluster (docs/kubernetes.md): manifests built
from the spec (workloads, Istio or Cilium policy, Chaos Mesh faults, traffic Jobs), checked
offline, and the run's records read back into a journal."""
