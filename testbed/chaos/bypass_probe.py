"""What a workload trying to go around its proxy runs, inside its pod's namespace (bypass
fault): a plain-HTTP GET to each address given, all at once, each with a short timeout, and
what came back. Standard library only, run as a script (`python -I -S bypass_probe.py
JSON`), so that it starts in milliseconds in whatever cgroup it is put.

In: {"timeout": S, "targets": [{"label": L, "ip": IP, "port": P}, ...]}
Out (stdout, one JSON): [{"label", "address", "status": int | null, "pod": answering pod |
null, "peer": the address the app saw | null, "error": str | null}, ...]
The app (cluster/agent.py) answers with its pod's name and the peer it saw: a peer that is
the prober's own address means no proxy stood between them."""

import json
import socket
import sys
import threading


def probe(ip, port, timeout):
    out = {"address": f"{ip}:{port}", "status": None, "pod": None, "peer": None, "error": None}
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"GET / HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        out["error"] = type(exc).__name__
        return out
    head, _, body = data.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].split()
    if len(line) < 2 or not line[0].startswith(b"HTTP/") or not line[1].isdigit():
        out["error"] = "no HTTP answer" if data else "closed"
        return out
    out["status"] = int(line[1])
    try:
        answer = json.loads(body)
        out["pod"], out["peer"] = answer.get("pod"), answer.get("peer")
    except ValueError:
        pass
    return out


def main():
    req = json.loads(sys.argv[1])
    results = [None] * len(req["targets"])

    def one(i, t):
        results[i] = dict(probe(t["ip"], t["port"], req["timeout"]), label=t["label"])

    threads = [threading.Thread(target=one, args=(i, t)) for i, t in enumerate(req["targets"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
