/* cgroup/getsockopt, on proxy cgroups: answer getsockopt(SOL_IP, SO_ORIGINAL_DST) on a
 * connection accepted from an app that connect4 redirected, from tb_flow_orig. Envoy's
 * original_dst listener filter asks exactly this. Anything else gets the kernel's answer. */
#include "tb_maps.h"

int tb_getsockopt(struct bpf_sockopt *ctx)
{
    if (ctx->level != TB_SOL_IP || ctx->optname != TB_SO_ORIGINAL_DST)
        return 1;
    struct bpf_sock *sk = ctx->sk;
    if (!sk)
        return 1;
    __u64 netns = bpf_get_netns_cookie(ctx);
    struct tb_flow_key key = {.netns = TB_IS_LOOPBACK(sk->dst_ip4) ? netns : 0,
                              .ip = sk->dst_ip4, .port = bpf_ntohs(sk->dst_port)};
    struct tb_addr *orig = tb_flow_orig.lookup(&key);
    if (!orig)
        return 1;
    struct { __u16 family; __u16 port; __u32 addr; __u8 zero[8]; } *sa = ctx->optval;
    if ((void *)(sa + 1) > ctx->optval_end)
        return 1;
    sa->family = TB_AF_INET;
    sa->port = orig->port;
    sa->addr = orig->ip;
    /* volatile: keep clang from merging the two s32 stores into one u64 store (rejected) */
    *(volatile int *)&ctx->optlen = 16;
    *(volatile int *)&ctx->retval = 0;
    tb_flow_orig.delete(&key);
    struct tb_stats zero = {};
    tb_stats.insert(&netns, &zero);
    struct tb_stats *st = tb_stats.lookup(&netns);
    if (st)
        __sync_fetch_and_add(&st->orig_dst, 1);
    return 1;
}
