#!/usr/bin/env python3
"""src_relay.py - a plain TCP relay that connects upstream FROM a chosen loopback source address.

The fleet tests (t_cache_fleet.sh, bench/bench_cache_fleet.sh) run eight "machines" against one
registry on loopback; each machine talks to the registry through its own relay, which listens on
127.0.0.N:PORT and connects to the registry from 127.0.0.N, so the registry's access log (its
first field, the remote address) says which machine made each request. Bytes are passed through
unchanged (no HTTP parsing, no fault injection); at each connection's end one line
"UP DOWN" (raw bytes client->registry, registry->client, HTTP headers included) is appended to
--log.

    src_relay.py --listen 127.0.0.11:5000 --upstream 127.0.0.1:5000 --source 127.0.0.11 --log F
"""
import argparse
import socket
import threading


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def pump(src, dst, out, i):
    n = 0
    try:
        while True:
            b = src.recv(1 << 16)
            if not b:
                break
            dst.sendall(b)
            n += len(b)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    out[i] = n


def serve(client, args, lock):
    up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        up.bind((args.source, 0))
        up.connect(addr(args.upstream))
    except OSError:
        client.close()
        up.close()
        return
    counts = [0, 0]
    back = threading.Thread(target=pump, args=(up, client, counts, 1), daemon=True)
    back.start()
    pump(client, up, counts, 0)
    back.join()
    client.close()
    up.close()
    with lock, open(args.log, "a") as f:
        f.write("%d %d\n" % (counts[0], counts[1]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--log", required=True)
    args = p.parse_args()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(addr(args.listen))
    ls.listen(64)
    lock = threading.Lock()
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c, args, lock), daemon=True).start()


if __name__ == "__main__":
    main()
