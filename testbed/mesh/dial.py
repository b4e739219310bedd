"""Dial a mesh entry point as a holder of an SVID would, and say what HTTP status a GET got:
over mTLS either straight (`mesh.tunnel: tcp`: a pod's captured port, a waypoint's listener
for a service) or through an HBONE tunnel (an HTTP/2 CONNECT stream to `authority` inside
the mTLS connection, then HTTP/1.1 inside the stream), as an L4 proxy opens it. What an
attacker with stolen keys tries (chaos/identity.py) and what the tests use to go around a
waypoint. curl cannot speak HTTP/2 to a proxy before 8.1, so HTTP/2 is written here: just
enough of it (RFC 9113) for one stream, and of HPACK (RFC 7541) to read a status code.

Standard library only, run as a script inside a namespace: a JSON object on stdin,
`{"cert", "key", "timeout", "targets": [{"host", "port", "authority"}]}` (`authority` null:
no tunnel), and one status per target on stdout, like curl's `%{http_code}`: `000` when the
connection or the tunnel was refused, reset or timed out. The server is not verified (curl -k).
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import sys
from concurrent.futures import ThreadPoolExecutor

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
ACK, END_STREAM, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
STREAM = 1
REFUSED = "000"
# HPACK's static table entries named :status (index: value), and the Huffman codes of digits
STATIC_STATUS = {8: "200", 9: "204", 10: "206", 11: "304", 12: "400", 13: "404", 14: "500"}
HUFFMAN_DIGITS = {"00000": "0", "00001": "1", "00010": "2", "011001": "3", "011010": "4", "011011": "5",
                  "011100": "6", "011101": "7", "011110": "8", "011111": "9"}


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name: str, value: str) -> bytes:
    """A header field as an HPACK literal without indexing, new name, no Huffman coding."""
    out = b"\x00"
    for s in (name.encode(), value.encode()):
        if len(s) >= 127:
            raise ValueError(f"header {name} too long for this client")
        out += bytes([len(s)]) + s
    return out


def _huffman_digits(data: bytes) -> str:
    bits, out, code = "".join(f"{b:08b}" for b in data), "", ""
    for bit in bits:
        code += bit
        if code in HUFFMAN_DIGITS:
            out, code = out + HUFFMAN_DIGITS[code], ""
        elif len(code) > 6:
            break  # not a digit: no status we can read
    return out if len(out) == 3 else REFUSED


def status_of(block: bytes) -> str:
    """The :status of a response header block (it comes first, RFC 9113 8.3)."""
    first = block[0]
    if first & 0x80:  # indexed field
        return STATIC_STATUS.get(first & 0x7F, REFUSED)
    index, rest = (first & 0x3F, block[1:]) if first & 0x40 else (first & 0x0F, block[1:])
    if index not in STATIC_STATUS or not rest:
        return REFUSED
    length = rest[0] & 0x7F
    value = rest[1:1 + length]
    return _huffman_digits(value) if rest[0] & 0x80 else value.decode(errors="replace")


def _exactly(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _http_status(response: bytes) -> str | None:
    """The status of an HTTP/1.1 response once its status line is complete."""
    if b"\r\n" not in response:
        return None
    parts = response.split(b"\r\n", 1)[0].split()
    return parts[1].decode() if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") else REFUSED


def _request(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def _straight(sock, host: str) -> str:
    sock.sendall(_request(host))
    response = b""
    while (status := _http_status(response)) is None:
        chunk = sock.recv(4096)
        if not chunk:
            return REFUSED
        response += chunk
    return status


def _tunnelled(sock, authority: str) -> str:
    headers = literal(":method", "CONNECT") + literal(":authority", authority)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, STREAM, headers))
    response = b""
    while True:
        length, kind, flags, stream = struct.unpack(">IBBI", b"\0" + _exactly(sock, 9))
        payload = _exactly(sock, length)
        if kind == SETTINGS and not flags & ACK:
            sock.sendall(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            sock.sendall(frame(PING, ACK, 0, payload))
        elif kind == GOAWAY or (kind == RST_STREAM and stream == STREAM):
            return REFUSED
        elif kind == HEADERS and stream == STREAM:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            if flags & PRIORITY:
                payload = payload[5:]
            if status_of(payload) != "200":
                return REFUSED  # the tunnel was refused (403 from the L4 proxy's policy, 404, 503)
            sock.sendall(frame(DATA, 0, STREAM, _request(authority)))
        elif kind == DATA and stream == STREAM:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            response += payload
            if (status := _http_status(response)) is not None:
                return status
            if flags & END_STREAM:
                return REFUSED


def dial(host: str, port: int, authority: str | None, cert: str, key: str, timeout: float = 3.0) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.load_cert_chain(cert, key)
    if authority:
        ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as sock:
            return _tunnelled(sock, authority) if authority else _straight(sock, host)
    except (OSError, ConnectionError, ValueError, struct.error):
        return REFUSED


def main() -> int:
    """Every target at once (each may take its whole timeout), answers in the targets' order."""
    job = json.load(sys.stdin)
    with ThreadPoolExecutor(max_workers=min(16, len(job["targets"]) or 1)) as pool:
        statuses = pool.map(lambda t: dial(t["host"], int(t["port"]), t.get("authority"), job["cert"], job["key"],
                                           job.get("timeout", 3.0)), job["targets"])
        for status in statuses:
            print(status, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
