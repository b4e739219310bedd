/* Map layouts shared by every program of a run, defined once. Each program includes this
 * header; the maps are pinned under TB_PIN_DIR (one directory per run), so programs loaded
 * from separate files share them. Constants can be overridden with -D at load time. */
#ifndef TB_MAPS_H
#define TB_MAPS_H

#include <uapi/linux/bpf.h>

#ifndef TB_PIN_DIR
#error "TB_PIN_DIR must be defined (the run's directory under /sys/fs/bpf)"
#endif
#ifndef TB_MAX_PODS
#define TB_MAX_PODS 4096
#endif
#ifndef TB_MAX_SERVICES
#define TB_MAX_SERVICES 1024
#endif
#ifndef TB_MAX_BACKENDS
#define TB_MAX_BACKENDS 8192
#endif
#ifndef TB_MAX_CAPTURES
#define TB_MAX_CAPTURES 8192     /* inbound capture keys: each pod's port, and its HBONE port behind a ztunnel */
#endif
#ifndef TB_MAX_FLOWS
#define TB_MAX_FLOWS 65536
#endif
#ifndef TB_FINAL_HOP_MARK
#define TB_FINAL_HOP_MARK 1337   /* a node proxy's own connection to its pod: never captured */
#endif

#define TB_AF_INET 2
#define TB_IPPROTO_TCP 6
#define TB_SOL_IP 0
#define TB_SO_ORIGINAL_DST 80

/* What a pod's cgroup does with a connection to a service VIP:port (key: cgroup id). */
enum tb_mode { TB_MODE_BALANCE = 0, TB_MODE_REDIRECT = 1 };
struct tb_pod {
    __u32 mode;            /* enum tb_mode */
    __u32 proxy_ip;        /* REDIRECT: where the serving proxy's outbound listener is (net order) */
    __u16 proxy_port;      /* net order */
    __u16 pad;
    __u32 pad2;
};

/* A service: VIP and port (net order) -> its backends, slots [first, first + count) of tb_backends. */
struct tb_svc_key { __u32 vip; __u16 port; __u16 pad; };
struct tb_svc { __u32 first; __u32 count; };
struct tb_addr { __u32 ip; __u16 port; __u16 pad; };      /* net order */

/* The original destination of a redirected connection, keyed by the app side of it as the
 * proxy sees its peer: (netns, ip net order, port host order). `netns` is the namespace
 * cookie for loopback addresses (every pod has its own 127.0.0.1) and 0 otherwise (pod
 * addresses are unique, and a node proxy sees them from another namespace). */
struct tb_flow_key { __u64 netns; __u32 ip; __u32 port; };

/* Inbound capture: a pod address and port (net order) -> slot of the serving proxy's listener
 * (slots below TB_MAX_PODS: a proxy's inbound at its index, a ztunnel's HBONE MAX_PROXIES (addressing.py) above it). */
struct tb_inbound_key { __u32 ip; __u16 port; __u16 pad; };

/* sk_msg short-circuit: both ends of a local connection, ips net order, ports host order. */
struct tb_sock_key { __u64 netns; __u32 sip; __u32 dip; __u32 sport; __u32 dport; };

/* Inbound counters per pod address and port (sk_lookup cannot read a netns cookie). */
struct tb_inbound_stats {
    __u64 steered;         /* connections handed to the serving proxy's listener */
    __u64 dropped;         /* ... dropped because that listener was missing (proxy restarting) */
};

/* Per-namespace counters (key: netns cookie). */
struct tb_stats {
    __u64 redirected;      /* connections sent to a proxy by connect4 */
    __u64 balanced;        /* connections to a VIP sent straight to a pod (no mesh) */
    __u64 orig_dst;        /* SO_ORIGINAL_DST answered to a proxy */
    __u64 sc_sockets;      /* sockets put in the short-circuit map */
    __u64 sc_msgs;         /* messages moved socket to socket, skipping TCP/IP */
    __u64 sc_bytes;
};

BPF_TABLE_PINNED("hash", __u64, struct tb_pod, tb_pods, TB_MAX_PODS, TB_PIN_DIR "/tb_pods");
BPF_TABLE_PINNED("hash", struct tb_svc_key, struct tb_svc, tb_services, TB_MAX_SERVICES, TB_PIN_DIR "/tb_services");
BPF_TABLE_PINNED("array", __u32, struct tb_addr, tb_backends, TB_MAX_BACKENDS, TB_PIN_DIR "/tb_backends");
BPF_TABLE_PINNED("lru_hash", __u64, struct tb_addr, tb_cookie_orig, TB_MAX_FLOWS, TB_PIN_DIR "/tb_cookie_orig");
BPF_TABLE_PINNED("lru_hash", struct tb_flow_key, struct tb_addr, tb_flow_orig, TB_MAX_FLOWS, TB_PIN_DIR "/tb_flow_orig");
BPF_TABLE_PINNED("hash", struct tb_inbound_key, __u32, tb_inbound, TB_MAX_CAPTURES, TB_PIN_DIR "/tb_inbound");
BPF_TABLE_PINNED("sockmap", __u32, __u64, tb_inbound_socks, TB_MAX_PODS, TB_PIN_DIR "/tb_inbound_socks");
/* bcc's BPF_SOCKHASH cannot be pinned: the same declaration, with a pinned section */
struct tb_sockets_table_t {
    struct tb_sock_key key;
    int leaf;
    int (*update)(struct tb_sock_key *, int *);
    int (*delete)(struct tb_sock_key *);
    int (*sock_hash_update)(void *, void *, u64);
    int (*msg_redirect_hash)(void *, void *, u64);
    int (*sk_redirect_hash)(void *, void *, u64);
    u32 max_entries;
};
__attribute__((section("maps/sockhash:" TB_PIN_DIR "/tb_sockets")))
struct tb_sockets_table_t tb_sockets = {.max_entries = TB_MAX_FLOWS};
BPF_ANNOTATE_KV_PAIR(tb_sockets, struct tb_sock_key, int);
BPF_TABLE_PINNED("hash", __u64, struct tb_stats, tb_stats, TB_MAX_PODS, TB_PIN_DIR "/tb_stats");
BPF_TABLE_PINNED("hash", struct tb_inbound_key, struct tb_inbound_stats, tb_inbound_stats, TB_MAX_CAPTURES,
                 TB_PIN_DIR "/tb_inbound_stats");

#define TB_IS_LOOPBACK(ip_net_order) (((ip_net_order) & 0xff) == 127)

/* bcc rewrites map calls only in the program's own file: each program looks its counters
 * up itself (tb_stats.insert of a zero entry, then lookup). */

#endif
