#!/bin/bash
# t_registry_auth.sh - `cstore login`/`logout` and the credentials the registry client finds, against
# Debian's docker-registry with TLS (a CA made here) and htpasswd, and with token auth
# (token_server.py): config.json entries (mode 0600), credential helpers, certs.d and --cert-dir,
# identity tokens; wrong passwords and missing credentials fail in one line that never holds the
# password.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
REGTOOL=${REGTOOL:-$CSTORE_SRC/build/tests/regtool}
[ -x "$REGTOOL" ] || skip "regtool '$REGTOOL' not built"
need jq base64
export DOCKER_CONFIG=$T/docker HOME=$T/home XDG_RUNTIME_DIR=$T/xdg CSTORE_CERTS_D=$T/certs.d
mkdir -p "$XDG_RUNTIME_DIR" "$CSTORE_CERTS_D"
unset REGISTRY_AUTH_FILE
CFG=$DOCKER_CONFIG/config.json
ALL=$T/all-output # everything cstore and regtool printed, searched for passwords at the end
WRONG=wrong-pw-$RANDOM
rt() { "$REGTOOL" "$@" 2>&1 | tee -a "$ALL"; return "${PIPESTATUS[0]}"; }
csl() { cs "$@" 2>&1 | tee -a "$ALL"; return "${PIPESTATUS[0]}"; }
one_line() { [ "$(printf '%s\n' "$1" | wc -l)" = 1 ]; }

registry_start tls || exit 1
must registry_seed x/busybox:1 busybox
R=$REG_ADDR/x/busybox

# --- TLS: the CA must come from --cert-dir or certs.d
out=$(echo "$REG_PASS" | csl login -u "$REG_USER" --password-stdin "$REG_ADDR")
check_fails "login to a TLS registry whose CA is unknown fails" test "$out" = "Login Succeeded"
check "in one line about the certificate" bash -c 'one() { [ "$(printf "%s\n" "$1" | wc -l)" = 1 ]; }; one "$1" && grep -q "certificate" <<<"$1"' _ "$out"
check_fails "and writes no config.json" test -e "$CFG"

# --- wrong password
out=$(echo "$WRONG" | csl login -u "$REG_USER" --password-stdin --cert-dir "$REG_CERTS" "$REG_ADDR")
check_eq "a wrong password fails in one line" "$out" \
    "cstore: $REG_ADDR: unauthorized: incorrect username or password"
check_fails "and writes no config.json" test -e "$CFG"

# --- no credentials: the 401 names cstore login
out=$(rt --cert-dir "$REG_CERTS" manifest "$R:1")
check "a pull without credentials names cstore login" grep -q "run \`cstore login $REG_ADDR\`" <<<"$out"
check "in one line" one_line "$out"

# --- login with --cert-dir
out=$(echo "$REG_PASS" | csl login -u "$REG_USER" --password-stdin --cert-dir "$REG_CERTS" "$REG_ADDR")
check_eq "login with --cert-dir succeeds" "$out" "Login Succeeded"
check_eq "config.json is written with mode 0600" "$(stat -c %a "$CFG")" 600
check_eq "its auths entry is base64 user:password" \
    "$(jq -r --arg k "$REG_ADDR" '.auths[$k].auth' "$CFG" | base64 -d)" "$REG_USER:$REG_PASS"
check "the stored credentials pull" rt --cert-dir "$REG_CERTS" manifest "$R:1"

# --- certs.d
mkdir -p "$CSTORE_CERTS_D/$REG_ADDR"
cp "$REG_CERTS/ca.crt" "$CSTORE_CERTS_D/$REG_ADDR/ca.crt"
check "the CA in certs.d/HOST:PORT is used" rt manifest "$R:1"
out=$(echo "$REG_PASS" | csl login -u "$REG_USER" --password-stdin "$REG_ADDR")
check_eq "login finds the CA in certs.d" "$out" "Login Succeeded"
rm -r "${CSTORE_CERTS_D:?}/$REG_ADDR"
check_fails "without it the pull fails again" rt manifest "$R:1"
check "--tls-verify=false skips verification" rt --tls-verify=false manifest "$R:1"

# --- -p warns; other entries of config.json are kept
jq '. + {"psFormat": "x", "auths": (.auths + {"other.example": {"auth": "b3RoZXI6cHc="}})}' "$CFG" >"$CFG.new"
mv "$CFG.new" "$CFG"
out=$(csl login -u "$REG_USER" -p "$REG_PASS" --cert-dir "$REG_CERTS" "$REG_ADDR")
check "-p warns that the password is visible" grep -q "password-stdin" <<<"$out"
check_eq "other keys of config.json are kept" "$(jq -r '.psFormat + " " + .auths["other.example"].auth' "$CFG")" \
    "x b3RoZXI6cHc="

# --- logout
out=$(csl logout "$REG_ADDR")
check_eq "logout removes the entry" "$out" "Removing login credentials for $REG_ADDR"
check_eq "from config.json" "$(jq -r --arg k "$REG_ADDR" '.auths[$k] // "gone"' "$CFG")" gone
check_eq "and keeps the others" "$(jq -r '.auths["other.example"].auth' "$CFG")" "b3RoZXI6cHc="
check_eq "config.json stays 0600" "$(stat -c %a "$CFG")" 600
check_eq "logout again says so" "$(csl logout "$REG_ADDR")" "Not logged in to $REG_ADDR"
check_fails "the pull fails without credentials" rt --cert-dir "$REG_CERTS" manifest "$R:1"

# --- a credential helper (credsStore), then credHelpers
mkdir -p "$T/bin" "$T/helper"
cat >"$T/bin/docker-credential-test" <<'EOT'
#!/bin/sh
# A docker credential helper keeping one file per server in $HELPER_DIR.
f=$HELPER_DIR/$(printf %s "${SERVER:-}" | tr '/:' '__')
case $1 in
get) read -r s; f=$HELPER_DIR/$(printf %s "$s" | tr '/:' '__')
     echo "get $s" >>"$HELPER_DIR/calls"
     if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store) j=$(cat); s=$(printf %s "$j" | jq -r .ServerURL); f=$HELPER_DIR/$(printf %s "$s" | tr '/:' '__')
     echo "store $s" >>"$HELPER_DIR/calls"
     printf %s "$j" | jq -c '{ServerURL, Username, Secret}' >"$f" ;;
erase) read -r s; f=$HELPER_DIR/$(printf %s "$s" | tr '/:' '__')
     echo "erase $s" >>"$HELPER_DIR/calls"
     if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
EOT
chmod +x "$T/bin/docker-credential-test"
export PATH=$T/bin:$PATH HELPER_DIR=$T/helper
echo '{"credsStore": "test"}' >"$CFG"
out=$(echo "$REG_PASS" | csl login -u "$REG_USER" --password-stdin --cert-dir "$REG_CERTS" "$REG_ADDR")
check_eq "login through the credsStore helper" "$out" "Login Succeeded"
check "the helper stored it" grep -qx "store $REG_ADDR" "$HELPER_DIR/calls"
check_eq "config.json holds no password then" "$(jq -c '.auths // {}' "$CFG")" "{}"
check "a pull gets the credentials from the helper" rt --cert-dir "$REG_CERTS" manifest "$R:1"
check "through get" grep -qx "get $REG_ADDR" "$HELPER_DIR/calls"
check_eq "logout erases through the helper" "$(csl logout "$REG_ADDR")" "Removing login credentials for $REG_ADDR"
check "with erase" grep -qx "erase $REG_ADDR" "$HELPER_DIR/calls"
check_fails "the helper has nothing left" rt --cert-dir "$REG_CERTS" manifest "$R:1"
printf '{"credHelpers": {"%s": "test"}, "credsStore": "nosuch"}' "$REG_ADDR" >"$CFG"
: >"$HELPER_DIR/calls"
out=$(echo "$REG_PASS" | csl login -u "$REG_USER" --password-stdin --cert-dir "$REG_CERTS" "$REG_ADDR")
check_eq "login through a credHelpers entry (before credsStore)" "$out" "Login Succeeded"
check "a pull uses the credHelpers helper" rt --cert-dir "$REG_CERTS" manifest "$R:1"
check_eq "only that helper ran" "$(cut -d' ' -f1 "$HELPER_DIR/calls" | sort -u | tr '\n' ' ')" "get store "
echo '{"credsStore": "broken"}' >"$CFG"
printf '#!/bin/sh\necho "keychain locked" >&2\nexit 3\n' >"$T/bin/docker-credential-broken"
chmod +x "$T/bin/docker-credential-broken"
out=$(rt --cert-dir "$REG_CERTS" manifest "$R:1")
check "a failing helper is one line naming it" bash -c 'grep -q "docker-credential-broken" <<<"$1" && [ "$(printf "%s\n" "$1" | wc -l)" = 1 ]' _ "$out"
rm -f "$CFG"

# --- podman's auth.json
mkdir -p "$XDG_RUNTIME_DIR/containers"
printf '{"auths": {"%s": {"auth": "%s"}}}' "$REG_ADDR" "$(printf '%s:%s' "$REG_USER" "$REG_PASS" | base64 -w0)" \
    >"$XDG_RUNTIME_DIR/containers/auth.json"
check "\${XDG_RUNTIME_DIR}/containers/auth.json credentials pull" rt --cert-dir "$REG_CERTS" manifest "$R:1"
mv "$XDG_RUNTIME_DIR/containers/auth.json" "$T/podman-auth.json"
REGISTRY_AUTH_FILE=$T/podman-auth.json check "\$REGISTRY_AUTH_FILE credentials pull" \
    rt --cert-dir "$REG_CERTS" manifest "$R:1"
registry_stop

# --- a registry that demands a client certificate
REG_TLS_CLIENT=1 registry_start tls || exit 1
must registry_seed x/busybox:1 busybox
R=$REG_ADDR/x/busybox
mkdir -p "$T/ca-only"
cp "$REG_CERTS/ca.crt" "$T/ca-only/"
out=$(echo "$REG_PASS" | csl login -u "$REG_USER" --password-stdin --cert-dir "$T/ca-only" "$REG_ADDR")
check "without a client certificate login fails in one line" bash -c '[ "$1" != "Login Succeeded" ] && [ "$(printf "%s\n" "$1" | wc -l)" = 1 ]' _ "$out"
out=$(echo "$REG_PASS" | csl login -u "$REG_USER" --password-stdin --cert-dir "$REG_CERTS" "$REG_ADDR")
check_eq "client.cert and client.key of --cert-dir are presented" "$out" "Login Succeeded"
mkdir -p "$CSTORE_CERTS_D/$REG_ADDR"
cp "$REG_CERTS"/* "$CSTORE_CERTS_D/$REG_ADDR/"
check "and those of certs.d/HOST:PORT" rt manifest "$R:1"
rm "$CSTORE_CERTS_D/$REG_ADDR/client.key"
out=$(rt manifest "$R:1")
check "a client.cert without its key is one line naming the key" bash -c 'grep -q "client.key" <<<"$1" && [ "$(printf "%s\n" "$1" | wc -l)" = 1 ]' _ "$out"
rm -r "${CSTORE_CERTS_D:?}/$REG_ADDR"
csl logout "$REG_ADDR" >/dev/null
registry_stop

# --- token auth: login, identity tokens
REG_TOKEN_REFRESH=refresh-$RANDOM-tok
registry_start token || exit 1
must registry_seed priv/busybox:1 busybox
out=$(echo "$WRONG" | csl login -u "$REG_USER" --password-stdin "$REG_ADDR")
check_eq "token auth: a wrong password fails in one line" "$out" \
    "cstore: $REG_ADDR: unauthorized: incorrect username or password"
out=$(echo "$REG_PASS" | csl login -u "$REG_USER" --password-stdin "$REG_ADDR")
check_eq "token auth: login succeeds" "$out" "Login Succeeded"
check "token auth: the stored credentials pull a private repository" rt manifest "$REG_ADDR/priv/busybox:1"
printf '{"auths": {"%s": {"auth": "", "identitytoken": "%s"}}}' "$REG_ADDR" "$REG_TOKEN_REFRESH" >"$CFG"
: >"$REG_TOKEN_LOG"
check "an identitytoken pulls" rt manifest "$REG_ADDR/priv/busybox:1"
check "through the OAuth refresh_token grant (POST)" grep -q "^POST $REG_USER repository:priv/busybox:pull" "$REG_TOKEN_LOG"
printf '{"auths": {"%s": {"auth": "", "identitytoken": "revoked"}}}' "$REG_ADDR" >"$CFG"
out=$(rt manifest "$REG_ADDR/priv/busybox:1")
check "a refused identitytoken is one line" bash -c 'grep -q unauthorized <<<"$1" && [ "$(printf "%s\n" "$1" | wc -l)" = 1 ]' _ "$out"
registry_stop

# --- no secret ever printed
check_eq "no output held the password" "$(grep -c -e "$REG_PASS" -e "$WRONG" -e "$REG_TOKEN_REFRESH" "$ALL")" 0
check "(the outputs were searched)" test -s "$ALL"
finish
