#!/usr/bin/env bash
# bench_cache_buildkit.sh - cstore's registry build cache against BuildKit's (docker 20.10's
# builder, DOCKER_BUILDKIT=1, inline cache: BUILDKIT_INLINE_CACHE=1 + docker push, then
# `docker build --cache-from`), in the SAME run, on examples/hello-go (its `# syntax=` line removed
# for both: no frontend image to pull), through one Debian docker-registry on loopback.
#
#   bash bench/bench_cache_buildkit.sh        (one command; prints only the results table)
#   CSTORE (default build/cstore), CSTORE_BASES (default out/bases), RUNS (default 3),
#   DOCKER (default /usr/bin/docker: Debian's 20.10 client; a newer CLI wants buildx)
#
# Machines: A and B are two dockerd (Debian's, started here: --bridge=none --iptables=false, own
# data and exec roots and socket; builds use --network none) and two cstore roots. B has the golang
# and busybox bases LOADED (docker load / cstore load of out/bases/*.docker.tar, not timed, not
# counted: they are not the cache's bytes); B has no build cache and no image of the project.
# For each tool, each run (fresh repository), three phases:
#   A export      A's (locally all-cached) build + push of the cache: docker build + docker push
#                 of the image with its inline cache; cstore build --cache-to type=registry,mode=max
#   B cached      B's build with --cache-from (every step should be CACHED); for cstore also
#                 "B cached + image": the build then `cstore export` of the image (a docker build
#                 leaves the image's layers in B's store; a cstore build fetches no chunk until one
#                 is needed)
#   one-line      app.go's message changed: A build + push (docker) / build --cache-to (cstore),
#                 then B's build with --cache-from (B has the old version: its image), and for
#                 cstore an EMPTY root E's (bases only) build + export of the image (the new
#                 version's chunks: delta chunks and the bases it lacks)
# Bytes from the registry's access log, each machine through its own source-address relay
# (tests/integration/fleet_lib.sh): up = the blobs whose upload it completed + its manifest PUTs
# (at the repository's mean manifest size), down = its GET bodies. Medians of RUNS runs, each on
# a fresh, empty registry; the two tools alternate within each run.
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
DOCKER=${DOCKER:-/usr/bin/docker}
bench_init buildkit
CSTORE=$cstore CSTORE_SRC=$src CSTORE_BASES=$bases T=$work DOCKER_CONFIG=$work/dockercfg
export CSTORE CSTORE_SRC CSTORE_BASES DOCKER_CONFIG DOCKER_BUILDKIT=1
mkdir -p "$DOCKER_CONFIG"
_cleanup() { bench_cleanup; }
. "$src/tests/integration/need.sh"
need dockerd "$DOCKER" docker-registry bc
. "$src/tests/integration/registry_lib.sh"
. "$src/tests/integration/fleet_lib.sh"
LOG=$work/log # every tool's output (kept until exit; shown on failure)

bench_stop() {
    local m p
    for m in A B; do
        p=$(cat "$work/d$m/pid" 2>/dev/null) || continue
        kill "$p" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    done
}
run() { # CMD...: output to $LOG; on failure, its tail and exit
    "$@" >>"$LOG" 2>&1 || {
        echo "bench: failed: $*" >&2
        tail -n 20 "$LOG" >&2
        exit 1
    }
}
dk() { "$DOCKER" -H "unix://$work/d$1/sock" "${@:2}"; }
cs_at() { "$cstore" --root "$work/c$1" "${@:2}"; }
dockerd_start() {
    mkdir -p "$work/d$1"
    dockerd --data-root "$work/d$1/root" --exec-root "$work/d$1/x" --pidfile "$work/d$1/pid" \
        --host "unix://$work/d$1/sock" --bridge=none --iptables=false >"$work/d$1/log" 2>&1 &
    for _ in $(seq 120); do dk "$1" info >/dev/null 2>&1 && return 0; sleep 0.5; done
    echo "bench: dockerd $1 did not start:" >&2
    tail -n 5 "$work/d$1/log" >&2
    exit 1
}
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
# steps_cached OUT: "CACHED/STEPS" of a plain progress output (docker's and cstore's alike)
steps_cached() {
    echo "$(grep -cE '^#[0-9]+ CACHED$' <<<"$1" || true)/$(grep -cE '^#[0-9]+ \[[^]]*\] (WORKDIR|COPY|ADD|RUN)' <<<"$1" || true)"
}

trap 'echo "bench: line $LINENO: $BASH_COMMAND failed" >&2' ERR
# fresh_registry: each run starts on an empty registry (a docker push would otherwise mount the
# blobs it pushed to another repository in an earlier run instead of uploading them)
fresh_registry() {
    fleet_stop || true
    registry_stop || true
    rm -rf "$work/registry"
    registry_start plain >/dev/null
    fleet_relays 4 # 1: docker A, 2: docker B, 3: cstore A, 4: cstore B
}
dockerd_start A
dockerd_start B
ctx=$work/ctx
cp -r "$src/examples/hello-go" "$ctx"
sed -i '/^# syntax=/d' "$ctx/Dockerfile"
orig=$(cat "$ctx/app.go")
for m in A B; do
    run dk "$m" load -i "$bases/busybox.docker.tar"
    run dk "$m" load -i "$bases/golang.docker.tar"
done
bases_b=$(dk B images -q --no-trunc | sort -u)
reset_b() { # B keeps the bases only: no other image, no build cache
    local id
    for id in $(dk B images -q --no-trunc | sort -u); do
        grep -qxF "$id" <<<"$bases_b" || run dk B rmi -f "$id"
    done
    run dk B builder prune -af
}
run cs_at A load "$bases/busybox.docker.tar"
run cs_at A load "$bases/golang.docker.tar"
cp -a "$work/cA" "$work/cT" # B's starting point each run: the bases loaded, nothing built
# A's local build cache is warm (an export is the all-cached build plus the push)
run dk A build --network none --build-arg BUILDKIT_INLINE_CACHE=1 -t hello "$ctx"
run cs_at A build -q -t hello "$ctx"

declare -A R # R[tool.phase.what] = the runs' figures, space separated
rec() { R[$1]+="$2 "; }
timed() { # KEY CMD...: wall time into R[KEY.t], output into $OUT
    local t0 key=$1
    shift
    t0=$(now)
    OUT=$("$@" 2>&1) || {
        echo "bench: failed: $*" >&2
        tail -n 20 <<<"$OUT" >&2
        exit 1
    }
    echo "$OUT" >>"$LOG"
    rec "$key.t" "$(secs "$t0" "$(now)")"
}
dk_push_build() { # M REF: build with inline cache and push
    dk "$1" build --network none --progress plain --build-arg BUILDKIT_INLINE_CACHE=1 -t "$2" "$ctx" &&
        dk "$1" push "$2"
}
dk_from_build() { dk B build --network none --progress plain --cache-from "$1" -t hello "$ctx"; }

# bk_cycle A_KEY B_KEY REPO: A builds and pushes, then B builds with --cache-from (BuildKit)
bk_cycle() {
    mark=$(fleet_mark)
    timed "$1" dk_push_build A "$(fleet_host 1)/$3:cache"
    rec "$1.up" "$(fleet_up 1 "$mark" "$3")"
    mark=$(fleet_mark)
    timed "$2" dk_from_build "$(fleet_host 2)/$3:cache"
    rec "$2.down" "$(fleet_down 2 "$mark")"
    rec "$2.cached" "$(steps_cached "$OUT")"
}
# cs_cycle A_KEY B_KEY REPO: the same with cstore, then B's export of the image (B_KEY"x")
cs_cycle() {
    mark=$(fleet_mark)
    timed "$1" cs_at A build --progress plain -t hello \
        --cache-to "type=registry,ref=$(fleet_host 3)/$3:buildcache,mode=max" "$ctx"
    rec "$1.up" "$(fleet_up 3 "$mark" "$3")"
    mark=$(fleet_mark)
    timed "$2" cs_at B build --progress plain -t hello \
        --cache-from "type=registry,ref=$(fleet_host 4)/$3:buildcache" "$ctx"
    rec "$2.down" "$(fleet_down 4 "$mark")"
    rec "$2.cached" "$(steps_cached "$OUT")"
    timed "$2x" cs_at B export hello -o "$work/b.tar"
    rec "$2x.down" "$(fleet_down 4 "$mark")" # the build's bytes and the export's
}
# cs_empty KEY REPO: after the one-line change, an EMPTY root E (the bases loaded only: no old
# version local, unlike B) builds with --cache-from and exports the image (KEY"x"), through B's relay
cs_empty() {
    rm -rf "$work/cE"
    cp -a "$work/cT" "$work/cE"
    mark=$(fleet_mark)
    timed "$1" cs_at E build --progress plain -t hello \
        --cache-from "type=registry,ref=$(fleet_host 4)/$2:buildcache" "$ctx"
    rec "$1.cached" "$(steps_cached "$OUT")"
    timed "$1x" cs_at E export hello -o "$work/e.tar"
    rec "$1x.down" "$(fleet_down 4 "$mark")"
}
change() { sed -i "s/fmt.Println(.*)/fmt.Println(\"Hello, run $1\")/" "$ctx/app.go"; }

for ((i = 1; i <= RUNS; i++)); do
    fresh_registry
    # ---- BuildKit ----
    echo "$orig" >"$ctx/app.go"
    reset_b
    bk_cycle bk.exp bk.b "hello$i"
    change "$i"
    bk_cycle bk.one bk.oneb "hello$i"
    # ---- cstore ----
    echo "$orig" >"$ctx/app.go"
    rm -rf "$work/cA/rcache" "$work/cB"
    cp -a "$work/cT" "$work/cB"
    cs_cycle cs.exp cs.b "cache/run$i"
    change "$i"
    cs_cycle cs.one cs.oneb "cache/run$i"
    cs_empty cs.onee "cache/run$i"
done

m() { # KEY: the median of R[KEY]
    # shellcheck disable=SC2086 # one word per run
    printf '%s\n' ${R[$1]} | median
}
ratio() { echo "scale=3; $1 / $2" | bc -l; }
echo "cstore vs BuildKit registry cache (docker $(dk A version --format '{{.Server.Version}}'), examples/hello-go;"
echo "medians of $RUNS runs; $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%RZ))"
printf '| %-38s | %-22s | %-22s | %s |\n' phase "BuildKit (inline cache)" "cstore (type=registry)" "cstore/BuildKit bytes"
printf '|%s|%s|%s|%s|\n' ------------------------------------- ---------------------- ---------------------- ------
row() { # NAME BKKEY CSKEY DIR
    printf '| %-38s | %9s B, %6.2f s | %9s B, %6.2f s | %s |\n' "$1" "$(m "$2.$4")" "$(m "$2.t")" \
        "$(m "$3.$4")" "$(m "$3.t")" "$(ratio "$(m "$3.$4")" "$(m "$2.$4")")"
}
row "A export (build + push): up" bk.exp cs.exp up
row "B all-cached build: down" bk.b cs.b down
row "B all-cached build + image: down" bk.b cs.bx down
row "one-line change, A build + push: up" bk.one cs.one up
row "one-line change, B build: down" bk.oneb cs.oneb down
row "one-line change, B build + image: down" bk.oneb cs.onebx down
row "... empty root E build + image: down" bk.oneb cs.oneex down
echo "steps CACHED (per run) B all-cached: BuildKit ${R[bk.b.cached]}, cstore ${R[cs.b.cached]};" \
    "one-line change B: BuildKit ${R[bk.oneb.cached]}, cstore ${R[cs.oneb.cached]}, E ${R[cs.onee.cached]}"
echo "(cstore's '+ image' rows: the time is cstore export's alone, the bytes the build's and the export's;"
echo " BuildKit's inline cache is mode=min (the final stage), cstore's export here mode=max: every stage)"
