/* sk_lookup, on the namespace where inbound capture happens (the pod's for sidecar and
 * micro, the node's for node and node-sa): a connection to a pod address and port that a
 * proxy serves goes to that proxy's inbound listener; when the listener is missing (the
 * proxy is restarting) the connection is dropped, never delivered around the proxy. */
#include "tb_maps.h"

int tb_sk_lookup(struct bpf_sk_lookup *ctx)
{
    if (ctx->family != TB_AF_INET || ctx->protocol != TB_IPPROTO_TCP)
        return SK_PASS;
    struct tb_inbound_key key = {.ip = ctx->local_ip4, .port = bpf_htons((__u16)ctx->local_port)};
    __u32 *slot = tb_inbound.lookup(&key);
    if (!slot)
        return SK_PASS;
    struct tb_inbound_stats zero = {};
    tb_inbound_stats.insert(&key, &zero);
    struct tb_inbound_stats *st = tb_inbound_stats.lookup(&key);
    struct bpf_sock *sk = (struct bpf_sock *)tb_inbound_socks.lookup(slot);
    if (!sk) {
        if (st)
            __sync_fetch_and_add(&st->dropped, 1);
        return SK_DROP;
    }
    long err = bpf_sk_assign(ctx, sk, 0);
    bpf_sk_release(sk);
    if (err) {
        if (st)
            __sync_fetch_and_add(&st->dropped, 1);
        return SK_DROP;
    }
    if (st)
        __sync_fetch_and_add(&st->steered, 1);
    return SK_PASS;
}
