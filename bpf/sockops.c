/* sockops, on pod cgroups and on the cgroups of proxies that share the pod's namespace:
 * - when an app's redirected connection is established, file its original destination under
 *   the app's end of it (netns, local ip, local port): that is the peer the proxy will see;
 * - with TB_SHORT_CIRCUIT, put both ends of local (loopback) connections in tb_sockets so
 *   sk_msg can move bytes socket to socket. */
#include "tb_maps.h"

#ifndef TB_SHORT_CIRCUIT
#define TB_SHORT_CIRCUIT 1
#endif

int tb_sockops(struct bpf_sock_ops *skops)
{
    if (skops->family != TB_AF_INET)
        return 0;
    __u32 op = skops->op;
    if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
        return 0;
    __u64 netns = bpf_get_netns_cookie(skops);
    if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
        __u64 cookie = bpf_get_socket_cookie(skops);
        struct tb_addr *orig = tb_cookie_orig.lookup(&cookie);
        if (orig) {
            struct tb_addr val = *orig;
            struct tb_flow_key key = {.netns = TB_IS_LOOPBACK(skops->local_ip4) ? netns : 0,
                                      .ip = skops->local_ip4, .port = skops->local_port};
            tb_flow_orig.update(&key, &val);
        }
    }
#if TB_SHORT_CIRCUIT
    if (TB_IS_LOOPBACK(skops->local_ip4) && TB_IS_LOOPBACK(skops->remote_ip4)) {
        struct tb_sock_key k = {.netns = netns, .sip = skops->local_ip4, .dip = skops->remote_ip4,
                                .sport = skops->local_port, .dport = bpf_ntohl(skops->remote_port)};
        int rc = tb_sockets.sock_hash_update(skops, &k, BPF_NOEXIST);  /* bcc: a statement of its own */
        if (rc == 0) {
            struct tb_stats zero = {};
    tb_stats.insert(&netns, &zero);
    struct tb_stats *st = tb_stats.lookup(&netns);
            if (st)
                __sync_fetch_and_add(&st->sc_sockets, 1);
        }
    }
#endif
    return 0;
}
