"""The rtnetlink requests encoded by hand (cluster/rtnl.py): attribute alignment and nesting,
checked by decoding them again."""

from __future__ import annotations

import socket
import struct

from testbed.cluster import rtnl


def attrs(data: bytes) -> dict[int, bytes]:
    out, off = {}, 0
    while off < len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        out[kind] = data[off + 4:off + length]
        off += (length + 3) & ~3
    return out


def test_attributes_are_padded_to_four_bytes():
    assert rtnl._attr(1, b"abc") == struct.pack("=HH", 7, 1) + b"abc\0"
    assert len(rtnl._attr(1, b"abcd")) == 8


def test_a_veth_request_nests_its_peer():
    kind, flags, body = rtnl.veth_add("p-web-0", "eth0", 7, master=3)
    assert kind == rtnl.RTM_NEWLINK and flags & rtnl.NLM_F_CREATE
    _family, _type, index, ifflags, change = rtnl._IFINFO.unpack_from(body)
    assert index == 0 and ifflags & rtnl.IFF_UP and change & rtnl.IFF_UP
    top = attrs(body[rtnl._IFINFO.size:])
    assert top[rtnl.IFLA_IFNAME] == b"p-web-0\0" and struct.unpack("=I", top[rtnl.IFLA_MASTER]) == (3,)
    info = attrs(top[rtnl.IFLA_LINKINFO])
    assert info[rtnl.IFLA_INFO_KIND] == b"veth\0"
    peer = attrs(info[rtnl.IFLA_INFO_DATA])[rtnl.VETH_INFO_PEER]
    peer_attrs = attrs(peer[rtnl._IFINFO.size:])
    assert peer_attrs[rtnl.IFLA_IFNAME] == b"eth0\0" and struct.unpack("=I", peer_attrs[rtnl.IFLA_NET_NS_FD]) == (7,)


def test_routes_by_gateway_or_on_the_link():
    _, _, body = rtnl.route_add("198.18.0.0", 15, gateway="198.19.1.1")
    family, dst_len, _s, _t, table, _p, scope, rtype, _f = rtnl._RTMSG.unpack_from(body)
    a = attrs(body[rtnl._RTMSG.size:])
    assert (family, dst_len, table, scope, rtype) == (socket.AF_INET, 15, 254, rtnl.RT_SCOPE_UNIVERSE, 1)
    assert a[rtnl.RTA_GATEWAY] == socket.inet_aton("198.19.1.1") and rtnl.RTA_OIF not in a
    _, _, body = rtnl.route_add("198.19.1.1", 32, oif=2)
    a = attrs(body[rtnl._RTMSG.size:])
    assert rtnl._RTMSG.unpack_from(body)[6] == rtnl.RT_SCOPE_LINK and struct.unpack("=I", a[rtnl.RTA_OIF]) == (2,)


def test_acknowledgements_are_read_back_from_one_buffer():
    msgs = b"".join(rtnl._HDR.pack(36, rtnl.NLMSG_ERROR, 0, seq, 0) + struct.pack("=i", -17 if seq == 2 else 0) +
                    bytes(16) for seq in (1, 2))
    got = [(kind, seq, struct.unpack_from("=i", payload)[0]) for kind, seq, payload in rtnl._messages(msgs)]
    assert got == [(rtnl.NLMSG_ERROR, 1, 0), (rtnl.NLMSG_ERROR, 2, -17)]
