/* sk_msg, on tb_sockets: a message sent on one end of a local connection goes straight to the
 * receive queue of the other end, skipping the TCP/IP stack. Without a peer it goes the
 * normal way. */
#include "tb_maps.h"

int tb_sk_msg(struct sk_msg_md *msg)
{
    __u64 netns = bpf_get_netns_cookie(msg);
    struct tb_sock_key peer = {.netns = netns, .sip = msg->remote_ip4, .dip = msg->local_ip4,
                               .sport = bpf_ntohl(msg->remote_port), .dport = msg->local_port};
    int verdict = tb_sockets.msg_redirect_hash(msg, &peer, BPF_F_INGRESS);  /* bcc: a statement of its own */
    if (verdict == SK_PASS) {
        struct tb_stats *st = tb_stats.lookup(&netns);
        if (st) {
            __sync_fetch_and_add(&st->sc_msgs, 1);
            __sync_fetch_and_add(&st->sc_bytes, msg->size);
        }
    }
    return SK_PASS;
}
