#!/usr/bin/env python3
"""token_server.py - a small token server for the registry's `auth: token` config (tests only).

Speaks the distribution token protocol on loopback:
  GET  /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]   (Basic credentials optional)
       -> {"token", "access_token", "expires_in", "issued_at"}; with credentials and
          offline_token=true also "refresh_token"
  POST /token  (application/x-www-form-urlencoded: grant_type=password|refresh_token,
       username, password | refresh_token, service, scope, client_id)
       -> {"access_token", "expires_in", "issued_at", "refresh_token"?}
Anonymous callers get pull on repositories under public/; the test user gets pull and push on every
repository; wrong credentials are 401. Tokens are RS256 JWTs with the signing certificate in the
x5c header, which the registry checks against its rootcertbundle. Each issued token adds a line to
--log: "METHOD USER SCOPE..." (never the password).
"""
import argparse
import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

A = None
KEY = None
X5C = None
REFRESH = {}
LOCK = threading.Lock()


def grant(user, scope):
    out = []
    parts = scope.split(":")
    if len(parts) < 3 or parts[0] != "repository":
        return out
    name, actions = ":".join(parts[1:-1]), parts[-1].split(",")
    if user:
        allowed = [a for a in actions if a in ("pull", "push", "delete", "*")]
    else:
        allowed = [a for a in actions if a == "pull" and name.startswith("public/")]
    if allowed:
        out.append({"type": "repository", "name": name, "actions": allowed})
    return out


def make_token(user, scopes):
    now = int(time.time())
    access = []
    for s in scopes:
        access += grant(user, s)
    claims = {"iss": A.issuer, "sub": user or "", "aud": A.service, "iat": now, "nbf": now - 5,
              "exp": now + A.expires, "jti": secrets.token_hex(8), "access": access}
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"x5c": [X5C]})


class H(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, extra=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def basic_user(self):
        """None: anonymous; False: wrong credentials; else the user name."""
        h = self.headers.get("Authorization", "")
        if not h.lower().startswith("basic "):
            return None
        try:
            u, _, p = base64.b64decode(h[6:]).decode().partition(":")
        except Exception:
            return False
        return u if (u == A.user and p == A.password) else False

    def issue(self, method, user, scopes, refresh=False):
        tok = make_token(user, scopes)
        body = {"token": tok, "access_token": tok, "expires_in": A.expires,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if refresh and user:
            rt = secrets.token_hex(16)
            with LOCK:
                REFRESH[rt] = user
            body["refresh_token"] = rt
        with LOCK, open(A.log, "a") as f:
            f.write("%s %s %s\n" % (method, user or "-", " ".join(scopes)))
        self.reply(200, body)

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        if u.path != "/token":
            return self.reply(404, {"error": "not found"})
        q = urllib.parse.parse_qs(u.query)
        user = self.basic_user()
        if user is False:
            return self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                                "message": "incorrect username or password"}]},
                              {"WWW-Authenticate": 'Basic realm="token"'})
        self.issue("GET", user, q.get("scope", []), q.get("offline_token") == ["true"])

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        f = urllib.parse.parse_qs(self.rfile.read(n).decode())
        g = lambda k: (f.get(k) or [""])[0]
        scopes = [s for v in f.get("scope", []) for s in v.split(" ") if s]
        if g("grant_type") == "password":
            if g("username") != A.user or g("password") != A.password:
                return self.reply(401, {"error": "invalid_grant"})
            return self.issue("POST", A.user, scopes, True)
        if g("grant_type") == "refresh_token":
            with LOCK:
                user = REFRESH.get(g("refresh_token"))
            if not user:
                return self.reply(401, {"error": "invalid_grant"})
            return self.issue("POST", user, scopes, True)
        self.reply(400, {"error": "unsupported_grant_type"})


def main():
    global A, KEY, X5C
    p = argparse.ArgumentParser()
    for k in ("port", "key", "cert", "issuer", "service", "user", "password", "log"):
        p.add_argument("--" + k, required=True)
    p.add_argument("--expires", type=int, default=300)
    p.add_argument("--refresh-token", action="append", default=[],
                   help="a refresh token accepted for --user (an identitytoken a test wrote)")
    A = p.parse_args()
    for rt in A.refresh_token:
        REFRESH[rt] = A.user
    with open(A.key, "rb") as f:
        KEY = serialization.load_pem_private_key(f.read(), password=None)
    with open(A.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    X5C = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    srv = ThreadingHTTPServer(("127.0.0.1", int(A.port)), H)
    srv.serve_forever()


if __name__ == "__main__":
    main()
