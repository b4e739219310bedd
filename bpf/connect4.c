/* cgroup/connect4, on every pod's cgroup: a connection to a service VIP:port goes to the
 * proxy serving the pod (REDIRECT; its original destination is remembered for
 * SO_ORIGINAL_DST), or without a mesh straight to one of the service's pods (BALANCE, a
 * socket-level kube-proxy). Proxies sit in other cgroups, so their own connections pass. */
#include "tb_maps.h"

int tb_connect4(struct bpf_sock_addr *ctx)
{
    if (ctx->user_family != TB_AF_INET || ctx->protocol != TB_IPPROTO_TCP)
        return 1;
    struct tb_svc_key sk = {.vip = ctx->user_ip4, .port = (__u16)ctx->user_port};
    struct tb_svc *svc = tb_services.lookup(&sk);
    if (!svc)
        return 1;                                   /* not a service: leave it alone */
    __u64 cg = bpf_get_current_cgroup_id();
    struct tb_pod *pod = tb_pods.lookup(&cg);
    if (!pod)
        return 1;                                   /* not one of our pods */
    __u64 netns = bpf_get_netns_cookie(ctx);
    struct tb_stats zero = {};
    tb_stats.insert(&netns, &zero);
    struct tb_stats *st = tb_stats.lookup(&netns);
    if (pod->mode == TB_MODE_REDIRECT) {
        struct tb_addr orig = {.ip = ctx->user_ip4, .port = (__u16)ctx->user_port};
        __u64 cookie = bpf_get_socket_cookie(ctx);
        tb_cookie_orig.update(&cookie, &orig);
        ctx->user_ip4 = pod->proxy_ip;
        ctx->user_port = pod->proxy_port;
        if (st)
            __sync_fetch_and_add(&st->redirected, 1);
        return 1;
    }
    if (svc->count == 0)
        return 1;
    __u32 slot = svc->first + bpf_get_prandom_u32() % svc->count;
    struct tb_addr *be = tb_backends.lookup(&slot);
    if (!be)
        return 1;
    struct tb_addr orig = {.ip = ctx->user_ip4, .port = (__u16)ctx->user_port};
    __u64 cookie = bpf_get_socket_cookie(ctx);
    tb_cookie_orig.update(&cookie, &orig);          /* so getpeername() shows the VIP */
    ctx->user_ip4 = be->ip;
    ctx->user_port = be->port;
    if (st)
        __sync_fetch_and_add(&st->balanced, 1);
    return 1;
}
