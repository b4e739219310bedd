"""A small NFQUEUE client over raw netlink (nfnetlink_queue): bind a queue, read the ids of
the packets the kernel holds for us, give verdicts. Metadata only: the packets are never
copied to user space. Standard library only; the usual binding (netfilterqueue) needs a
compiler and libnetfilter_queue headers, and this is all the delay fault needs of it.

Message layouts: linux/netfilter/nfnetlink_queue.h. Netlink headers are in host byte
order, the queue's own structures in network byte order."""

from __future__ import annotations

import socket
import struct

NETLINK_NETFILTER = 12
SOL_NETLINK, NETLINK_NO_ENOBUFS = 270, 5
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO = 0x1, 0x4
NF_DROP, NF_ACCEPT = 0, 1

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_NFGENMSG = struct.Struct("!BBH")  # family, version, queue number
_NLA = struct.Struct("=HH")  # len, type


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, payload: bytes) -> bytes:
    data = _NLA.pack(_NLA.size + len(payload), kind) + payload
    return data + b"\0" * (_align(len(data)) - len(data))


def attrs(data: bytes) -> dict[int, bytes]:
    """Netlink attributes (type -> payload) of one message body."""
    out, off = {}, 0
    while off + _NLA.size <= len(data):
        length, kind = _NLA.unpack_from(data, off)
        if length < _NLA.size:
            break
        out[kind & 0x3FFF] = data[off + _NLA.size:off + length]
        off += _align(length)
    return out


class NfQueue:
    """One bound queue in the current network namespace (netlink sockets belong to the
    namespace they are created in)."""

    def __init__(self, num: int, maxlen: int = 8192):
        self.num, self._seq = num, 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
            self.sock.bind((0, 0))
            self._config(_attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)))
            flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO  # a full queue lets packets pass
            self._config(_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
                         + _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen))
                         + _attr(NFQA_CFG_MASK, struct.pack("!I", flags))
                         + _attr(NFQA_CFG_FLAGS, struct.pack("!I", flags)))
        except BaseException:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def _message(self, msg_type: int, body: bytes, flags: int = NLM_F_REQUEST) -> bytes:
        self._seq += 1
        payload = _NFGENMSG.pack(socket.AF_UNSPEC, 0, self.num) + body
        return _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags,
                              self._seq, 0) + payload

    def _config(self, body: bytes) -> None:
        """Send a config message and wait for the kernel's answer (an error raises)."""
        self.sock.send(self._message(NFQNL_MSG_CONFIG, body, NLM_F_REQUEST | NLM_F_ACK))
        seq = self._seq
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + _NLMSGHDR.size <= len(data):
                length, kind, _flags, mseq, _pid = _NLMSGHDR.unpack_from(data, off)
                if kind == NLMSG_ERROR and mseq == seq:
                    (err,) = struct.unpack_from("=i", data, off + _NLMSGHDR.size)
                    if err:
                        raise OSError(-err, f"NFQUEUE {self.num}: config refused by the kernel")
                    return
                off += _align(length) if length else len(data)

    def read(self) -> list[int]:
        """The ids of the packets waiting in one read (blocks unless the socket is ready)."""
        data = self.sock.recv(1 << 20)
        ids, off = [], 0
        packet = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET
        while off + _NLMSGHDR.size <= len(data):
            length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
            if length < _NLMSGHDR.size:
                break
            if kind == packet:
                body = data[off + _NLMSGHDR.size + _NFGENMSG.size:off + length]
                hdr = attrs(body).get(NFQA_PACKET_HDR)
                if hdr is not None and len(hdr) >= 4:
                    ids.append(struct.unpack_from("!I", hdr)[0])
            off += _align(length)
        return ids

    def verdict(self, packet_ids: list[int], verdict: int = NF_ACCEPT) -> None:
        """Release packets (one netlink message each, sent together)."""
        for k in range(0, len(packet_ids), 512):
            self.sock.send(b"".join(self._message(NFQNL_MSG_VERDICT,
                                                  _attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, pid)))
                                    for pid in packet_ids[k:k + 512]))

    def close(self) -> None:
        """Unbind. Packets still held are dropped by the kernel: release them first."""
        try:
            self._config(_attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_UNBIND, 0, 0)))
        except OSError:
            pass
        self.sock.close()
