/* cgroup/getpeername4, on every pod's cgroup: an app asking whom it is connected to sees the
 * service it dialled, not the proxy or pod its connection was sent to. */
#include "tb_maps.h"

int tb_getpeername4(struct bpf_sock_addr *ctx)
{
    __u64 cookie = bpf_get_socket_cookie(ctx);
    struct tb_addr *orig = tb_cookie_orig.lookup(&cookie);
    if (orig) {
        ctx->user_ip4 = orig->ip;
        ctx->user_port = orig->port;
    }
    return 1;
}
