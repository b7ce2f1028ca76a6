#!/bin/bash
# t_registry_client.sh - the registry client (registry/) against Debian's docker-registry, driven
# call by call with tests/tools/regtool; skopeo seeds the registry and reads back what was pushed.
# Faults (connection reset mid-blob, 503, 429, redirects to another host) come from
# fault_proxy.py in front of the real registry.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
REGTOOL=${REGTOOL:-$CSTORE_SRC/build/tests/regtool}
[ -x "$REGTOOL" ] || skip "regtool '$REGTOOL' not built"
need jq sha256sum
bases
export DOCKER_CONFIG=$T/docker HOME=$T/home XDG_RUNTIME_DIR=$T/xdg
mkdir -p "$XDG_RUNTIME_DIR"
unset REGISTRY_AUTH_FILE
rt() { "$REGTOOL" "$@"; }

registry_start plain || exit 1
must registry_seed x/busybox:1 busybox
R=$REG_ADDR/x/busybox

# --- manifests
rt manifest "$R:1" >"$T/m.out"
check "a manifest is fetched by tag" test -s "$T/m.out"
tail -n +2 "$T/m.out" >"$T/m.json"
want=$(skopeo inspect --raw --tls-verify=false "docker://$R:1" | sha256sum | cut -d' ' -f1)
check_eq "its digest is sha256 of the bytes skopeo gets" "$(head -1 "$T/m.out" | cut -d' ' -f1)" \
    "sha256:$want"
check_eq "its media type is the Content-Type" "$(head -1 "$T/m.out" | cut -d' ' -f2)" \
    "$(jq -r .mediaType "$T/m.json")"
check "a manifest is fetched by digest (verified)" rt manifest "$R@sha256:$want"
check_eq "HEAD on a manifest gives digest and size" "$(rt head-manifest "$R:1" | cut -d' ' -f1-3)" \
    "exists sha256:$want $(stat -c %s "$T/m.json")"
check_eq "HEAD on an unknown tag says missing" "$(rt head-manifest "$R:nope")" missing
out=$(rt manifest "$R:nope" 2>&1)
check_eq "an unknown tag is one line: manifest unknown" "$out" \
    "regtool: $R:nope: manifest unknown"
out=$(rt manifest "$REG_ADDR/no/such:1" 2>&1)
check "an unknown repository is one line naming manifest unknown" \
    bash -c '[ "$(printf "%s\n" "$1" | wc -l)" = 1 ] && grep -q "manifest unknown" <<<"$1"' _ "$out"
other=$(printf '%064d' 7)
out=$(rt manifest "$R@sha256:$other" 2>&1)
check "an unknown digest fails" grep -q "manifest unknown" <<<"$out"

# --- blobs
L=$(jq -r '.layers[0].digest' "$T/m.json")
LSIZE=$(jq -r '.layers[0].size' "$T/m.json")
check_eq "a blob streams with the bytes of its digest" "sha256:$(rt blob "$R:1" "$L" | sha256sum | cut -d' ' -f1)" "$L"
rt blob "$R:1" "$L" >"$T/layer"
check_eq "a blob from an offset is its tail (Range)" "$(rt blob "$R:1" "$L" 1000 | sha256sum)" \
    "$(tail -c +1001 "$T/layer" | sha256sum)"
check_eq "HEAD on a blob gives its size" "$(rt head-blob "$R:1" "$L")" "exists $LSIZE"
check_eq "HEAD on an unknown blob says missing" "$(rt head-blob "$R:1" "sha256:$other")" missing
out=$(rt blob "$R:1" "sha256:$other" 2>&1 >/dev/null)
check "an unknown blob is one line naming it" grep -q "blob unknown" <<<"$out"
check_eq "4 threads stream the same blob through one client" \
    "$(rt parallel "$R:1" "$L" 4 | sort -u)" "${L#sha256:}"

# --- upload, mount, manifest put; skopeo reads it back
gets_before=$(reg_count '"GET /v2/')
C=$(jq -r '.config.digest' "$T/m.json")
rt blob "$R:1" "$C" >"$T/config"
check "a small blob of known size is uploaded" rt put-blob "$REG_ADDR/y/copy:1" "$L" "$T/layer" "$LSIZE"
check_eq "it went up in one PUT (monolithic)" "$(reg_count '"PUT /v2/y/copy/blobs/uploads/')" 1
check_eq "and no PATCH" "$(reg_count '"PATCH /v2/y/copy/')" 0
check "a blob of unknown size is uploaded from a pipe" \
    bash -c '"$1" put-blob "$2" "$3" - -1 <"$4"' _ "$REGTOOL" "$REG_ADDR/y/copy:1" "$C" "$T/config"
check_eq "a blob is mounted from another repository" "$(rt mount "$REG_ADDR/z/copy:1" "$L" x/busybox)" mounted
check_eq "the mount was one POST answered 201" "$(reg_count '"POST /v2/z/copy/blobs/uploads/\?mount=[^ ]*&from=x%2Fbusybox HTTP/1.1" 201')" 1
check_eq "a blob the source repository lacks is not mounted" \
    "$(rt mount "$REG_ADDR/z/copy:1" "sha256:$other" x/busybox)" "not mounted"
check "the config is mounted too" rt mount "$REG_ADDR/z/copy:1" "$C" y/copy
MT=$(jq -r .mediaType "$T/m.json")
check_eq "a manifest PUT answers its digest" "$(rt put-manifest "$REG_ADDR/z/copy:v2" "$MT" "$T/m.json")" "sha256:$want"
check_eq "skopeo reads the pushed manifest back with the same digest" \
    "$(skopeo inspect --tls-verify=false "docker://$REG_ADDR/z/copy:v2" | jq -r .Digest)" "sha256:$want"
check "skopeo copies it to an OCI layout" skopeo copy -q --src-tls-verify=false \
    "docker://$REG_ADDR/z/copy:v2" "oci:$T/back:latest"
check_fails "a blob whose bytes do not match the digest is refused" \
    rt put-blob "$REG_ADDR/y/bad:1" "sha256:$other" "$T/config"
out=$(rt put-blob "$REG_ADDR/y/bad:1" "sha256:$other" "$T/config" 2>&1)
check "with the registry's one line" grep -q "digest did not match" <<<"$out"

# A big blob (golang's largest layer) goes up in chunked PATCHes; re-upload checks.
G=$(jq -r '.manifests[0].digest' "$BASES/golang.oci/index.json")
GM=$BASES/golang.oci/blobs/sha256/${G#sha256:}
BIG=$(jq -r '[.layers[] | select(.size > 40000000)][0].digest' "$GM")
BIGF=$BASES/golang.oci/blobs/sha256/${BIG#sha256:}
if [ "$BIG" != null ] && [ -f "$BIGF" ]; then
    out=$(rt put-blob "$REG_ADDR/g/big:1" "$BIG" "$BIGF" "$(stat -c %s "$BIGF")" 2>&1)
    check_eq "a big blob is uploaded" "$out" "uploaded $(stat -c %s "$BIGF") bytes"
    n=$(( ($(stat -c %s "$BIGF") + 16777215) / 16777216 ))
    check_eq "in 16 MiB PATCH chunks" "$(reg_count '"PATCH /v2/g/big/blobs/uploads/')" "$n"
    check_eq "and it reads back with its digest" \
        "sha256:$(rt blob "$REG_ADDR/g/big:1" "$BIG" | sha256sum | cut -d' ' -f1)" "$BIG"
else
    _fail "golang base has a layer over 40 MB"
fi

# --- faults, through fault_proxy.py in front of the registry
proxy_start --cut-blob 300000
check_eq "a blob whose connection resets mid-way is resumed and complete" \
    "sha256:$(rt blob "$PROXY_ADDR/x/busybox:1" "$L" | sha256sum | cut -d' ' -f1)" "$L"
check "the retry asked for the rest with Range (206)" grep -q "GET /v2/x/busybox/blobs/$L auth=no -> 206" "$PROXY_LOG"
proxy_stop
proxy_start --cut-blob 1000 --redirect-blobs
check_eq "a resumed redirected blob is complete" \
    "sha256:$(rt blob "$PROXY_ADDR/x/busybox:1" "$L" 5 | sha256sum | cut -d' ' -f1)" \
    "$(tail -c +6 "$T/layer" | sha256sum | sed 's/^/sha256:/; s/ .*//')"
proxy_stop
proxy_start --fail-manifest 2
t0=$(date +%s.%N)
check "a manifest answered 503 twice is fetched on the third try" rt manifest "$PROXY_ADDR/x/busybox:1"
check "after honouring Retry-After: 1 (2 s or more)" awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { exit !(b - a >= 2) }'
proxy_stop
proxy_start --fail-ping 1
check "a registry whose /v2/ answers 503 at first still serves a manifest" \
    timeout 60 "$REGTOOL" manifest "$PROXY_ADDR/x/busybox:1"
check "(the 503 was seen)" grep -q 'GET /v2/ .*-> 503' "$PROXY_LOG"
proxy_stop
proxy_start --corrupt-manifest
out=$(rt manifest "$PROXY_ADDR/x/busybox@sha256:$want" 2>&1)
check "a manifest whose bytes do not match the digest asked for is refused in one line" \
    bash -c '[ "$(printf "%s\n" "$1" | wc -l)" = 1 ] && grep -q "the registry sent a manifest with digest sha256:" <<<"$1"' _ "$out"
check "the same manifest by tag is returned (the caller has no digest to check)" \
    rt manifest "$PROXY_ADDR/x/busybox:1"
proxy_stop
proxy_start --throttle-blob 1
check "a blob answered 429 is fetched after Retry-After" rt head-blob "$PROXY_ADDR/x/busybox:1" "$L"
check_eq "429 on GET is retried" "sha256:$(rt blob "$PROXY_ADDR/x/busybox:1" "$L" | sha256sum | cut -d' ' -f1)" "$L"
check "the 429 was seen" grep -q -- "-> 429" "$PROXY_LOG"
proxy_stop
proxy_start --throttle-blob 99
out=$(rt blob "$PROXY_ADDR/x/busybox:1" "$L" 2>&1 >/dev/null)
check "429 for ever gives up with one line" grep -q "too many requests" <<<"$out"
proxy_stop

# --- redirects never carry credentials to another host
mkdir -p "$DOCKER_CONFIG"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$PROXY_ADDR" "$(printf 'u:redirect-pw' | base64)" \
    >"$DOCKER_CONFIG/config.json"
proxy_start --basic u:redirect-pw --redirect-blobs
printf '{"auths":{"%s":{"auth":"%s"}}}' "$PROXY_ADDR" "$(printf 'u:redirect-pw' | base64)" \
    >"$DOCKER_CONFIG/config.json"
check_eq "a blob redirected to another host is fetched" \
    "sha256:$(rt blob "$PROXY_ADDR/x/busybox:1" "$L" | sha256sum | cut -d' ' -f1)" "$L"
check "the registry got the credentials" grep -q "^main GET /v2/x/busybox/blobs/$L auth=yes -> 307" "$PROXY_LOG"
check "the other host did not" grep -q "^side GET /v2/x/busybox/blobs/$L auth=no -> 200" "$PROXY_LOG"
check_eq "nothing with credentials reached the other host" "$(grep -c '^side .*auth=yes' "$PROXY_LOG")" 0
proxy_stop
proxy_start --basic u:redirect-pw --redirect-blobs --side-asks-auth
printf '{"auths":{"%s":{"auth":"%s"}}}' "$PROXY_ADDR" "$(printf 'u:redirect-pw' | base64)" \
    >"$DOCKER_CONFIG/config.json"
out=$(rt blob "$PROXY_ADDR/x/busybox:1" "$L" 2>&1 >/dev/null)
check "a redirect to a host that asks for credentials fails saying so" \
    grep -q "redirected to 'http://$PROXY_SIDE', which asks for credentials (never sent" <<<"$out"
check_eq "without sending them there" "$(grep -c '^side .*auth=yes' "$PROXY_LOG")" 0
check "and without the password in the message" bash -c '! grep -q redirect-pw <<<"$1"' _ "$out"
proxy_stop
rm -f "$DOCKER_CONFIG/config.json"

# --- the registry goes away
registry_stop
out=$(rt manifest "$R:1" 2>&1)
check "an unreachable registry is one line naming it" \
    bash -c '[ "$(printf "%s\n" "$1" | wc -l)" = 1 ] && grep -q "unreachable" <<<"$1"' _ "$out"

# --- token auth: anonymous public pulls, tokens cached per scope
REG_TOKEN_EXPIRES=300 registry_start token || exit 1
must registry_seed public/busybox:1 busybox
must registry_seed priv/busybox:1 busybox
: >"$REG_TOKEN_LOG"
check "an anonymous token pulls a public repository" rt manifest "$REG_ADDR/public/busybox:1"
check_eq "4 parallel blob fetches of one client share one token" \
    "$(rt parallel "$REG_ADDR/public/busybox:1" "$L" 4 | sort -u)" "${L#sha256:}"
check_eq "tokens asked: one per process" "$(grep -c 'public/busybox:pull' "$REG_TOKEN_LOG")" 2
out=$(rt manifest "$REG_ADDR/priv/busybox:1" 2>&1)
check "a private repository without credentials names cstore login" \
    grep -q "run \`cstore login $REG_ADDR\`" <<<"$out"
mkdir -p "$DOCKER_CONFIG"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$REG_ADDR" "$(printf '%s:%s' "$REG_USER" "$REG_PASS" | base64)" \
    >"$DOCKER_CONFIG/config.json"
check "config.json credentials get a token for a private repository" rt manifest "$REG_ADDR/priv/busybox:1"
check "the token server saw the user" grep -q "^GET $REG_USER repository:priv/busybox:pull" "$REG_TOKEN_LOG"
check "a push token uploads" rt put-blob "$REG_ADDR/priv/other:1" "$C" "$T/config"
check_eq "a mount asks one token for both repositories" \
    "$(rt mount "$REG_ADDR/priv/third:1" "$L" priv/busybox)" mounted
check "with both scopes" grep -q "repository:priv/third:pull,push repository:priv/busybox:pull" "$REG_TOKEN_LOG"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$REG_ADDR" "$(printf '%s:wrong' "$REG_USER" | base64)" \
    >"$DOCKER_CONFIG/config.json"
out=$(rt manifest "$REG_ADDR/priv/busybox:1" 2>&1)
check_eq "a wrong password is one line" "$out" \
    "regtool: $REG_ADDR: unauthorized: incorrect username or password"
registry_stop
finish
