# registry_lib.sh - a real registry (Debian's docker-registry, distribution 2.8) on loopback for the
# registry tests. Source it after lib.sh (it needs $T and the check helpers).
#
#   registry_start MODE    MODE is one of
#       plain   plain HTTP, no auth
#       tls     HTTPS with a CA and server certificate made here (openssl; names localhost and
#               127.0.0.1), htpasswd basic auth (bcrypt: htpasswd -B)
#       token   plain HTTP, `auth: token` with tests/integration/token_server.py (python3 JWTs signed
#               with a key made here) on another loopback port; anonymous pulls of repositories
#               under public/, everything with the test user's credentials
#     exports REG_ADDR (HOST:PORT to give cstore and skopeo: 127.0.0.1:PORT for plain and token,
#     localhost:PORT for tls), REG_DIR (config, data, certs), REG_LOG (the access log: one line per
#     request, "combined" format: count requests in it), REG_APPLOG (the registry's own log),
#     REG_USER/REG_PASS (tls, token), REG_CERTS (tls: a --cert-dir with the CA as ca.crt),
#     REG_TOKEN_LOG (token: one line per token issued: "GET|POST user scope...").
#     Tls mode with REG_TLS_CLIENT=1 also demands a client certificate (clientcas), which it puts in
#     REG_CERTS as client.cert / client.key.
#     Token mode reads REG_TOKEN_EXPIRES (seconds, default 300) and REG_TOKEN_REFRESH (a refresh
#     token the server accepts for the test user: an identitytoken a test writes).
#   registry_stop          stops the registry (and token server); also done at exit.
#   registry_seed NAME SRC pushes SRC into repository NAME ("x/y:tag") of the running registry with
#                          skopeo. SRC: an archive path (*.oci.tar: oci-archive, else
#                          docker-archive), or a base name ("busybox") for $CSTORE_BASES/NAME.oci.tar.
#   proxy_start ARGS...    tests/integration/fault_proxy.py in front of the running (plain) registry:
#                          exports PROXY_ADDR (127.0.0.1:PORT), PROXY_SIDE (127.0.0.2:PORT, where it
#                          redirects blobs), PROXY_LOG; ARGS are fault_proxy.py's (--cut-blob N...).
#   proxy_stop
#   reg_count REGEX        number of access-log lines matching REGEX (grep -E), e.g.
#                          reg_count '"PUT /v2/[^ ]*/blobs/uploads/'

REG_PID=
REG_TOKEN_PID=
PROXY_PID=
REG_SKOPEO=()

_reg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# _reg_wait URL: until something listens at URL (10 s): any answer but "couldn't connect" (7),
# a TLS handshake refused for want of a client certificate included.
_reg_wait() {
    local i rc
    for ((i = 0; i < 100; i++)); do
        rc=0
        curl -s -o /dev/null -k "$1" 2>/dev/null || rc=$?
        [ "$rc" != 7 ] && return 0
        sleep 0.1
    done
    echo "registry at $1 did not start; its log:" >&2
    tail -n 20 "$REG_APPLOG" >&2
    return 1
}

_reg_certs() {
    local d=$REG_DIR/pki
    mkdir -p "$d" "$REG_DIR/certs"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=cstore test CA" \
        -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null || return 1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null || return 1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$d/ext.cnf"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/ext.cnf" -out "$d/server.crt" 2>/dev/null || return 1
    cp "$d/ca.crt" "$REG_DIR/certs/ca.crt"
    REG_CERTS=$REG_DIR/certs
    if [ "${REG_TLS_CLIENT:-0}" = 1 ]; then
        # A client certificate the registry demands (clientcas), in the cert dir as docker has it.
        openssl req -newkey rsa:2048 -nodes -subj "/CN=cstore test client" \
            -keyout "$REG_CERTS/client.key" -out "$d/client.csr" 2>/dev/null || return 1
        printf 'extendedKeyUsage=clientAuth\n' >"$d/client.cnf"
        openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
            -days 2 -extfile "$d/client.cnf" -out "$REG_CERTS/client.cert" 2>/dev/null || return 1
    fi
}

_reg_token_server() {
    local tport d=$REG_DIR/token
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=cstore test token issuer" \
        -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null || return 1
    tport=$(_reg_free_port)
    REG_TOKEN_LOG=$d/issued.log
    : >"$REG_TOKEN_LOG"
    /usr/bin/python3 "$CSTORE_SRC/tests/integration/token_server.py" --port "$tport" --key "$d/key.pem" \
        --cert "$d/cert.pem" --issuer cstore-test-issuer --service cstore-test-registry \
        --user "$REG_USER" --password "$REG_PASS" --log "$REG_TOKEN_LOG" \
        --expires "${REG_TOKEN_EXPIRES:-300}" ${REG_TOKEN_REFRESH:+--refresh-token "$REG_TOKEN_REFRESH"} \
        >"$d/server.log" 2>&1 &
    REG_TOKEN_PID=$!
    REG_TOKEN_REALM=http://127.0.0.1:$tport/token
    _reg_wait "$REG_TOKEN_REALM" || return 1
    cat <<EOT
auth:
  token:
    realm: $REG_TOKEN_REALM
    service: cstore-test-registry
    issuer: cstore-test-issuer
    rootcertbundle: $d/cert.pem
EOT
}

registry_start() {
    local mode=$1 port scheme=http auth="" tls=""
    need docker-registry skopeo openssl curl python3
    REG_DIR=$T/registry
    mkdir -p "$REG_DIR/data"
    port=$(_reg_free_port)
    REG_ADDR=127.0.0.1:$port
    REG_LOG=$REG_DIR/access.log
    REG_APPLOG=$REG_DIR/registry.log
    REG_USER=
    REG_PASS=
    REG_CERTS=
    REG_SKOPEO=(--dest-tls-verify=false)
    case $mode in
    plain) ;;
    tls)
        need htpasswd
        REG_USER=tester REG_PASS="pw-$RANDOM-s3cret"
        _reg_certs || return 1
        htpasswd -Bbc "$REG_DIR/htpasswd" "$REG_USER" "$REG_PASS" 2>/dev/null || return 1
        REG_ADDR=localhost:$port
        scheme=https
        REG_SKOPEO=(--dest-cert-dir "$REG_CERTS" --dest-creds "$REG_USER:$REG_PASS")
        tls="  tls:
    certificate: $REG_DIR/pki/server.crt
    key: $REG_DIR/pki/server.key"
        [ "${REG_TLS_CLIENT:-0}" = 1 ] && tls="$tls
    clientcas: [$REG_DIR/pki/ca.crt]"
        auth="auth:
  htpasswd:
    realm: cstore-test
    path: $REG_DIR/htpasswd"
        ;;
    token)
        # Debian's python3 (python3-jwt, python3-cryptography), not another python3 on PATH.
        /usr/bin/python3 -c 'import jwt, cryptography' 2>/dev/null || skip "needs python3-jwt and python3-cryptography"
        REG_USER=tester REG_PASS="pw-$RANDOM-t0ken"
        _reg_token_server >"$REG_DIR/auth.yml" || return 1
        auth=$(cat "$REG_DIR/auth.yml")
        REG_SKOPEO=(--dest-tls-verify=false --dest-creds "$REG_USER:$REG_PASS")
        ;;
    *)
        echo "registry_start: unknown mode '$mode'" >&2
        return 1
        ;;
    esac
    cat >"$REG_DIR/config.yml" <<EOT
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: cstore-test-$RANDOM$RANDOM
$tls
$auth
EOT
    : >"$REG_LOG"
    docker-registry serve "$REG_DIR/config.yml" >"$REG_LOG" 2>"$REG_APPLOG" &
    REG_PID=$!
    _reg_wait "$scheme://127.0.0.1:$port/v2/" || return 1
    export REG_ADDR REG_DIR REG_LOG REG_APPLOG REG_USER REG_PASS REG_CERTS
}

proxy_start() {
    local port side
    port=$(_reg_free_port)
    side=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2", 0)); print(s.getsockname()[1])')
    PROXY_ADDR=127.0.0.1:$port
    PROXY_SIDE=127.0.0.2:$side
    PROXY_LOG=$REG_DIR/proxy.$port.log
    : >"$PROXY_LOG"
    python3 "$CSTORE_SRC/tests/integration/fault_proxy.py" --listen "$PROXY_ADDR" --side "$PROXY_SIDE" \
        --upstream "${REG_ADDR/localhost/127.0.0.1}" --log "$PROXY_LOG" "$@" >"$PROXY_LOG.err" 2>&1 &
    PROXY_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "http://$PROXY_SIDE/" && break
        sleep 0.1
    done
    : >"$PROXY_LOG"
    export PROXY_ADDR PROXY_SIDE PROXY_LOG
}

proxy_stop() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
    PROXY_PID=
    return 0
}

registry_stop() {
    proxy_stop
    local p
    for p in $REG_PID $REG_TOKEN_PID; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    REG_PID=
    REG_TOKEN_PID=
    return 0
}

registry_seed() {
    local name=$1 src=$2 kind=docker-archive
    case $src in
    */*) ;;
    *) src=$CSTORE_BASES/$src.oci.tar ;;
    esac
    case $src in
    *.oci.tar) kind=oci-archive ;;
    esac
    skopeo copy -q "${REG_SKOPEO[@]}" "$kind:$src" "docker://$REG_ADDR/$name"
}

reg_count() { grep -cE -- "$1" "$REG_LOG"; }

# Stop the registry before lib.sh's cleanup removes its directory; keep the exit status.
_reg_exit() {
    local rc=$?
    registry_stop
    (exit "$rc")
    _cleanup
}
trap _reg_exit EXIT
