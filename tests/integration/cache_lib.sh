# cache_lib.sh - what the build cache tests (t_cache_remote.sh, t_cache_registry.sh) share.
# Source it after lib.sh.

# build_plain ARGS...: a build's plain progress, its "cache: ..." lines on stderr along.
build_plain() { cs build --progress plain "$@" 2>&1; }
# layer_steps OUT / cached_steps OUT: the WORKDIR/COPY/ADD/RUN steps of a plain progress output,
# and the CACHED ones.
layer_steps() { grep -cE '^#[0-9]+ \[[^]]*\] (WORKDIR|COPY|ADD|RUN)' <<<"$1"; }
cached_steps() { grep -cE '^#[0-9]+ CACHED$' <<<"$1"; }
# field OUT KEY: the number before KEY on a "cache: ..." line ("written," -> packs written).
field() { grep -oE "[0-9]+ $2" <<<"$1" | head -n 1 | cut -d' ' -f1; }
# fetched_bytes OUT: the bytes of "cache: fetched N chunks, B bytes ...".
fetched_bytes() { grep -oE 'fetched [0-9]+ chunks, [0-9]+ bytes' <<<"$1" | awk '{print $4}'; }

# light_project DIR: a busybox project whose builder stage makes an 8 MB random layer and whose
# final stage copies one small file ("built line 1", from msg.txt) out of it.
light_project() {
    mkdir -p "$1"
    printf 'line 1\n' >"$1/msg.txt"
    cat >"$1/Dockerfile" <<'EOF2'
FROM busybox AS build
WORKDIR /src
COPY msg.txt ./
RUN head -c 8000000 /dev/urandom >/src/big.bin && echo "built $(cat msg.txt)" >/out.txt
FROM busybox
COPY --from=build /out.txt /out.txt
EOF2
}
