"""The few rtnetlink requests that wiring a cluster takes, encoded here (links.py): links
(veth pairs, bridges, up, bridge port isolation), addresses and routes. pyroute2's cost per
request (0.9 runs an event loop for each) was most of the time it takes to wire a 200-pod
cluster, and importing it ~0.2 s of every `up` and `down`; it serves the rest (faults,
doctor). A node's veths are one batch of requests, a pod's configuration one lookup and
one batch, each request acknowledged, every error raised with the request it answers."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

from . import netns

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 18, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA, VETH_INFO_PEER = 1, 2, 4, 5, 1
IFLA_BRPORT_ISOLATED = 33
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RTN_UNICAST = 254, 3, 0, 253, 1
WHAT = {RTM_NEWLINK: "link", RTM_NEWADDR: "address", RTM_NEWROUTE: "route"}
_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags


class NetlinkError(OSError):
    pass


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * (-length % 4)


def link_up(index: int) -> tuple[int, int, bytes]:
    return RTM_NEWLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)


def veth_add(ifname: str, peer: str, peer_netns_fd: int, master: int) -> tuple[int, int, bytes]:
    """A veth pair: `ifname` here, up and enslaved to bridge `master`; `peer` created in the
    namespace open at `peer_netns_fd`."""
    peer_info = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, peer.encode() + b"\0") + \
        _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
    linkinfo = _attr(IFLA_INFO_KIND, b"veth\0") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_info))
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, ifname.encode() + b"\0") + \
        _attr(IFLA_MASTER, struct.pack("=I", master)) + _attr(IFLA_LINKINFO, linkinfo)
    return RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body


def bridge_add(ifname: str) -> tuple[int, int, bytes]:
    """A bridge, up."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, ifname.encode() + b"\0") + \
        _attr(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"bridge\0"))
    return RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body


def bridge_port_isolated(ifname: str) -> tuple[int, int, bytes]:
    """Bridge port `ifname` isolated: it talks to the bridge's own address (the gateway),
    never to another isolated port (a neighbour pod)."""
    slave = _attr(IFLA_INFO_SLAVE_KIND, b"bridge\0") + _attr(IFLA_INFO_SLAVE_DATA, _attr(IFLA_BRPORT_ISOLATED, b"\1"))
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, ifname.encode() + b"\0") + \
        _attr(IFLA_LINKINFO, slave)
    return RTM_NEWLINK, 0, body


def addr_add(index: int, address: str, prefixlen: int) -> tuple[int, int, bytes]:
    body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    body += _attr(IFA_LOCAL, socket.inet_aton(address)) + _attr(IFA_ADDRESS, socket.inet_aton(address))
    return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body


def route_add(dst: str, prefixlen: int, gateway: str | None = None, oif: int | None = None) -> tuple[int, int, bytes]:
    """Via `gateway`, or (without one) on link `oif`, scope link."""
    scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
    body = _RTMSG.pack(socket.AF_INET, prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
    body += _attr(RTA_DST, socket.inet_aton(dst))
    if gateway:
        body += _attr(RTA_GATEWAY, socket.inet_aton(gateway))
    if oif is not None:
        body += _attr(RTA_OIF, struct.pack("=I", oif))
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body


def _messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    off = 0
    while off + _HDR.size <= len(data):
        length, kind, _flags, seq, _pid = _HDR.unpack_from(data, off)
        if length < _HDR.size:
            break
        yield kind, seq, data[off + _HDR.size:off + length]
        off += (length + 3) & ~3


class Rtnl:
    """A route netlink socket opened inside a namespace (it stays bound to it)."""

    def __init__(self, ns_name: str):
        with netns.entered(ns_name):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.ns = ns_name
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def link_index(self, ifname: str) -> int:
        self.seq += 1
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, ifname.encode() + b"\0")
        self.sock.send(_HDR.pack(_HDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST, self.seq, 0) + body)
        for kind, seq, payload in _messages(self.sock.recv(65536)):
            if seq != self.seq:
                continue
            if kind == NLMSG_ERROR:
                err = -struct.unpack_from("=i", payload)[0]
                raise NetlinkError(err, f"no link {ifname} in {self.ns}")
            if kind == RTM_NEWLINK:
                return _IFINFO.unpack_from(payload)[2]
        raise NetlinkError(0, f"no answer about link {ifname} in {self.ns}")

    def batch(self, requests: list[tuple[int, int, bytes]]) -> None:
        """Send every request in one write; each must be acknowledged without error."""
        if not requests:
            return
        first = self.seq + 1
        out = []
        for kind, flags, body in requests:
            self.seq += 1
            out.append(_HDR.pack(_HDR.size + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + body)
        self.sock.send(b"".join(out))
        pending = set(range(first, self.seq + 1))
        while pending:
            for kind, seq, payload in _messages(self.sock.recv(65536)):
                if kind != NLMSG_ERROR or seq not in pending:
                    continue
                pending.discard(seq)
                err = -struct.unpack_from("=i", payload)[0]
                if err:
                    kind = requests[seq - first][0]
                    raise NetlinkError(err, f"{WHAT.get(kind, 'request')} request {seq - first + 1} of "
                                            f"{len(requests)} in {self.ns}: {os.strerror(err)}")
