#!/usr/bin/env python3
"""fault_proxy.py - a proxy in front of a real registry that injects the failures a
registry client must survive (tests only; loopback only).

  --listen HOST:PORT     the registry address the client is given
  --side HOST:PORT       a second listener on another loopback address: where blobs are redirected
  --upstream HOST:PORT   the real registry (plain http)
  --log FILE             one line a request: "main|side METHOD PATH auth=yes|no -> STATUS"
  --basic USER:PASS      the main listener asks for Basic credentials (401 + challenge)
  --redirect-blobs       blob GETs on main answer 307 to the side listener
  --side-asks-auth       the side listener answers 401 with a Basic challenge
  --cut-blob N           the first GET of each blob sends its headers and N bytes, then resets
  --fail-manifest K      the first K manifest GETs answer 503 with Retry-After: 1
  --throttle-blob K      the first K blob GETs answer 429 with Retry-After: 1
  --fail-ping K          the first K GETs of /v2/ answer 503
  --corrupt-manifest     manifest bodies get a space appended (same JSON, other digest)
  --cut-patch            the first PATCH reaches the registry, but its answer is lost (reset)
  --drop-patch N         the Nth PATCH (from 1) is read and never forwarded (reset): the client must
                         ask where the upload stands and send the chunk again
  --log-range            each log line ends in " range=HDR" (the request's Range header, "-" when none)
  --ignore-range         blob GETs are forwarded without their Range header: the registry answers 200
                         with the whole blob, as a registry or storage that ignores Range does
  --drop-count C         ... and the C-1 PATCHes after it too (default 1; libcurl itself resends a
                         request once when a reused connection dies before any answer)
Uploads (POST, PATCH, PUT, DELETE) are forwarded with their bodies.
"""
import argparse
import base64
import http.client
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

A = None
LOCK = threading.Lock()
SEEN = {}


def first(key):
    """How many times key was seen before (and count this one)."""
    with LOCK:
        n = SEEN.get(key, 0)
        SEEN[key] = n + 1
        return n


def make_handler(side):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def log(self, status):
            with LOCK, open(A.log, "a") as f:
                f.write("%s %s %s auth=%s -> %s%s\n" % ("side" if side else "main", self.command,
                        self.path, "yes" if self.headers.get("Authorization") else "no", status,
                        " range=%s" % (self.headers.get("Range") or "-") if A.log_range else ""))

        def answer(self, status, headers=(), body=b""):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.log(status)

        def handle_one(self):
            p = self.path.split("?")[0]
            blob = "/blobs/sha256:" in p and self.command == "GET"
            if side and A.side_asks_auth:
                return self.answer(401, [("WWW-Authenticate", 'Basic realm="side"')])
            if not side and A.basic:
                want = "Basic " + base64.b64encode(A.basic.encode()).decode()
                if self.headers.get("Authorization") != want:
                    return self.answer(401, [("WWW-Authenticate", 'Basic realm="proxy"')])
            if not side and "/manifests/" in p and self.command == "GET" \
                    and first("m" + p) < A.fail_manifest:
                return self.answer(503, [("Retry-After", "1")], b'{"errors":[]}')
            if p == "/v2/" and first("p") < A.fail_ping:
                return self.answer(503, [], b'{"errors":[]}')
            if blob and first("t" + p) < A.throttle_blob:
                return self.answer(429, [("Retry-After", "1")])
            if not side and blob and A.redirect_blobs:
                return self.answer(307, [("Location", "http://%s%s" % (A.side, self.path))])
            self.forward(blob and A.cut_blob >= 0 and first("c" + p) == 0,
                         A.corrupt_manifest and "/manifests/" in p)

        def forward(self, cut, corrupt=False):
            up = http.client.HTTPConnection(*A.upstream.split(":"))
            # Host stays: the registry builds upload Locations from it (back through us).
            hdrs = {k: v for k, v in self.headers.items() if k.lower() != "authorization"
                    and not (A.ignore_range and k.lower() == "range")}
            n = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(n) if n else None
            if self.command == "PATCH" and A.drop_patch \
                    and 0 <= first("drop") + 1 - A.drop_patch < A.drop_count:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.log("dropped")
                self.close_connection = True
                self.connection.close()
                return
            up.request(self.command, self.path, body=data, headers=hdrs)
            r = up.getresponse()
            body = r.read() if self.command != "HEAD" else b""
            if self.command == "PATCH" and A.cut_patch and first("patch") == 0:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.log("%d lost" % r.status)
                self.close_connection = True
                self.connection.close()
                return
            if corrupt and body:
                body += b" "
            self.send_response(r.status)
            for k, v in r.getheaders():
                drop = ("connection", "transfer-encoding", "keep-alive") + (("content-length",) if corrupt else ())
                if k.lower() not in drop:
                    self.send_header(k, v)
            if (corrupt or r.getheader("Content-Length") is None) and self.command != "HEAD":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if cut:
                self.wfile.write(body[:A.cut_blob])
                self.wfile.flush()
                # RST, not FIN: a connection reset mid-blob.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.log("%d cut" % r.status)
                self.close_connection = True
                self.connection.close()
                return
            self.wfile.write(body)
            self.log(r.status)
            up.close()

        def do_GET(self):
            self.handle_one()

        do_HEAD = do_GET

        def do_POST(self):
            if A.basic and not side:
                return self.handle_one()
            self.forward(False)

        do_PATCH = do_PUT = do_DELETE = do_POST

    return H


def main():
    global A
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--side", required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--basic")
    p.add_argument("--redirect-blobs", action="store_true")
    p.add_argument("--side-asks-auth", action="store_true")
    p.add_argument("--cut-blob", type=int, default=-1)
    p.add_argument("--fail-manifest", type=int, default=0)
    p.add_argument("--throttle-blob", type=int, default=0)
    p.add_argument("--fail-ping", type=int, default=0)
    p.add_argument("--corrupt-manifest", action="store_true")
    p.add_argument("--cut-patch", action="store_true")
    p.add_argument("--drop-patch", type=int, default=0)
    p.add_argument("--drop-count", type=int, default=1)
    p.add_argument("--log-range", action="store_true")
    p.add_argument("--ignore-range", action="store_true")
    A = p.parse_args()
    servers = []
    for addr, side in ((A.listen, False), (A.side, True)):
        h, port = addr.rsplit(":", 1)
        servers.append(ThreadingHTTPServer((h, int(port)), make_handler(side)))
    threading.Thread(target=servers[1].serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
