"""The mesh stage: Envoy proxies placed per architecture (sidecar, node, node-sa, ambient, ztunnel)."""
