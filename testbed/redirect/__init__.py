"""The redirect stage: how app traffic reaches its proxy, `ebpf` (cgroup connect hooks,
sockops, sk_msg, sk_lookup; the default) or `iptables` (REDIRECT, the classic way). The
closed set of names is in `kinds.py`."""
