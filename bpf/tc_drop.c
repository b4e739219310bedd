/* tc classifier (clsact ingress and egress) on a target's interface: drop a share of the
 * packets at random (the `drop` fault; netem is absent on our kernels). The share is a
 * load-time constant; the counters are the program's own. */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>

#ifndef TB_DROP_PER_MILLE
#define TB_DROP_PER_MILLE 100   /* 10 % */
#endif

BPF_ARRAY(tb_drop_counts, u64, 2);   /* [0] passed, [1] dropped */

int tb_tc_drop(struct __sk_buff *skb)
{
    int key = 1;
    if (bpf_get_prandom_u32() % 1000 < TB_DROP_PER_MILLE) {
        u64 *n = tb_drop_counts.lookup(&key);
        if (n)
            __sync_fetch_and_add(n, 1);
        return TC_ACT_SHOT;
    }
    key = 0;
    u64 *n = tb_drop_counts.lookup(&key);
    if (n)
        __sync_fetch_and_add(n, 1);
    return TC_ACT_OK;
}
