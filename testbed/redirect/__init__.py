"""The redirect stage: how app traffic reaches its proxy. `iptables` (REDIRECT, the classic
way) today; `ebpf` (cgroup connect hooks, sockops, sk_msg, sk_lookup) comes next."""
