#!/usr/bin/env bash
# bench_compare.sh - issue 11's whole table in one run: cstore against BuildKit (Debian's dockerd,
# started here by hand with its own data root, --bridge=none --iptables=false) and buildah
# (overlay, its own root), medians of RUNS, with the issue's goals marked met / not met:
#
#   hello-go (examples/hello-go: golang -> busybox):
#     no-op rebuild; one-line change in app.go; cold build with the base already present (cstore:
#     an unrelated RUN on golang first, so its snapshot exists; peers: build cache pruned); first
#     build after loading the bases into a fresh store / emptied data root; load golang
#     (cstore load / docker load / buildah pull docker-archive); export hello:multi (cstore export,
#     first and cached; docker save; buildah push oci-archive); store on disk after loading both
#     bases and building hello-go (du -sbx of the root / data root / containers storage).
#   gcc (RUN-heavy): FROM the Debian-made gcc base (tests/mkbase_gcc.sh), 20 generated C files of
#     ~300 lines, `RUN gcc -O2 -c` of all + link, --no-cache: cstore --snapshotter fuse (a fresh
#     server each build) vs --snapshotter unpack (gcc's snapshot made before) vs BuildKit vs buildah.
#
#   bash bench/bench_compare.sh [RUNS]          (default 3; no-op rebuilds use RUNS+2)
#   CSTORE_BEFORE=/path/to/older/cstore bash bench/bench_compare.sh [RUNS]
#                                    (also the cached export by that binary, same store, same run)
#
# One command, nothing else to start. Needs root, /dev/fuse, runc, buildah, docker.io (dockerd +
# /usr/bin/docker), jq, bc, a Release build in build/, the bases of tests/mkbase.sh in
# $CSTORE_BASES (default out/bases) and mmdebstrap for the gcc base (made once, cached there, by
# tests/mkbase_gcc.sh; apt-get install mmdebstrap). Prints a Markdown report on stdout
# (bench/RESULTS-compare.md holds the last ones recorded); progress on stderr. Every timed
# command starts after `sync`; the tools are interleaved within each round.
. "$(dirname "$0")/lib.sh"
runs=${1:-3}
noop_runs=$((runs + 2))
load_start=$(cut -d" " -f1-3 /proc/loadavg)
log() { echo "bench: $*" >&2; }

bench_stop() { bench_dockerd_stop; }
bench_init compare
trap 'exit 130' INT TERM
for t in buildah runc jq bc dockerd "$docker_bin"; do
    command -v "$t" >/dev/null || { echo "bench: '$t' not found" >&2; exit 1; }
done
[ -f "$bases/busybox.docker.tar" ] && [ -f "$bases/golang.docker.tar" ] || bench_bases
bash "$src/tests/mkbase_gcc.sh" "$bases" >&2

cs() { "$cstore" --root "$1" "${@:2}"; }
csb() { cs "$1" build --progress quiet --network none "${@:2}"; }
bah() { TMPDIR=$work/bah-tmp buildah --root "$work/bah/root" --runroot "$work/bah/run" --storage-driver overlay "$@"; }
# runc: buildah prefers crun when installed, which refuses this machine's hybrid cgroups
bahb() { bah bud --runtime runc --layers --pull=never --network none -q "$@"; }
bkb() { DOCKER_BUILDKIT=1 dk build --network none -q "$@"; }
sizeb() { du -sbx "$1" 2>/dev/null | cut -f1; }
mkdir -p "$work/bah-tmp" "$work/p"

# the samples of each measure: S[key]="x y z". add KEY CMD...: one more sample of CMD's wall time
# (a failure stops the run); addv KEY VALUE: one more value.
declare -A S
add() {
    local k=$1 v
    shift
    v=$(wall_sync "$@") || exit 1
    S[$k]+=" $v"
}
addv() { S[$1]+=" $2"; }

# ---- dockerd ----
bench_dockerd_start

# ---- projects ----
# a copy of hello-go printing MSG; BuildKit's without `# syntax=` (offline: dockerd's own frontend)
mkproj() {
    rm -rf "$1"
    cp -r "$src/examples/hello-go" "$1"
    sed -i "s/fmt.Println(.*)/fmt.Println(\"$2\")/" "$1/app.go"
    sed -i '/^# syntax=/d' "$1/Dockerfile"
}
setmsg() { sed -i "s/fmt.Println(.*)/fmt.Println(\"$2\")/" "$1/app.go"; }
printf 'FROM golang\nRUN go version > /go-version\n' >"$work/warm.Dockerfile"
mkdir -p "$work/warm" && mv "$work/warm.Dockerfile" "$work/warm/Dockerfile"
# gcc: 20 files of ~300 lines each (headers from the base: the lower dir is read)
gccp=$work/p/gcc
mkdir -p "$gccp/src"
for f in $(seq -w 1 20); do
    {
        printf '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\n'
        printf '#include <stdint.h>\n#include <errno.h>\n#include <unistd.h>\n#include <pthread.h>\n\n'
        for g in $(seq 1 24); do
            printf 'static double f%s_%s(const double *v, size_t n, uint32_t s) {\n' "$f" "$g"
            printf '    double acc = %s.0;\n    for (size_t i = 0; i < n; i++) {\n' "$g"
            printf '        s = s * 1103515245u + 12345u;\n'
            printf '        acc += sqrt(v[i] * (double) (s %% %s)) / (1.0 + (double) i);\n' "$((g + 7))"
            printf '        if ((s >> 7) %% %s == 0) acc = fmod(acc, 1e6 + %s);\n    }\n' "$((g + 3))" "$g"
            printf '    char b[64];\n    snprintf(b, sizeof b, "%%g", acc);\n'
            printf '    return acc + (double) strlen(b);\n}\n\n'
        done
        printf 'double unit%s(const double *v, size_t n) {\n    double t = 0;\n' "$f"
        for g in $(seq 1 24); do printf '    t += f%s_%s(v, n, %su);\n' "$f" "$g" "$g"; done
        printf '    return t;\n}\n'
    } >"$gccp/src/u$f.c"
done
{
    printf '#include <stdio.h>\n#include <stdlib.h>\n'
    for f in $(seq -w 1 20); do printf 'double unit%s(const double *v, size_t n);\n' "$f"; done
    printf 'int main(void) {\n    double v[64], t = 0;\n    for (int i = 0; i < 64; i++) v[i] = i;\n'
    for f in $(seq -w 1 20); do printf '    t += unit%s(v, 64);\n' "$f"; done
    printf '    printf("%%.0f\\n", t);\n    return 0;\n}\n'
} >"$gccp/src/main.c"
printf 'FROM gcc\nCOPY src/ /src/\nWORKDIR /src\nRUN gcc -O2 -c *.c && gcc -o /usr/local/bin/app *.o -lm && rm *.o\nCMD ["app"]\n' \
    >"$gccp/Dockerfile"
gcc_lines=$(cat "$gccp"/src/*.c | wc -l)

# ---- the main stores: bases loaded, hello-go built once ----
log "setup: loading the bases into the three tools"
M=$work/cs
for b in golang busybox gcc; do
    cs "$M" load "$bases/$b.docker.tar" >/dev/null
    bah pull -q "docker-archive:$bases/$b.docker.tar" >/dev/null
    dk load -q -i "$bases/$b.docker.tar" >/dev/null
done
for t in cs bah bk; do mkproj "$work/p/$t" "Hello, World!"; done
csb "$M" -t hello:multi "$work/p/cs" >/dev/null
bahb -t hello "$work/p/bah" >/dev/null 2>&1
bkb -t hello "$work/p/bk" >/dev/null
[ "$(cs "$M" run --network none hello:multi)" = "Hello, World!" ] || { log "cstore's hello prints the wrong thing"; exit 1; }
[ "$(dk run --rm --network none hello)" = "Hello, World!" ] || { log "BuildKit's hello prints the wrong thing"; exit 1; }
# gcc: the unpacked snapshot of the base made (and the program checked) once
csb "$M" --snapshotter unpack -t app "$gccp" >/dev/null
gcc_out=$(cs "$M" run --network none app)
[ -n "$gcc_out" ] || { log "the gcc build's program printed nothing"; exit 1; }

# ---- rounds ----
for i in $(seq "$runs"); do
    log "round $i/$runs: no-op rebuilds"
    for _ in $(seq $((noop_runs / runs + 1))); do
        add noop_cs csb "$M" -t hello:multi "$work/p/cs"
        add noop_bah bahb -t hello "$work/p/bah"
        add noop_bk bkb -t hello "$work/p/bk"
    done
    log "round $i/$runs: one-line change"
    setmsg "$work/p/cs" "Hello, cstore $i!"
    add inc_cs csb "$M" -t hello:multi "$work/p/cs"
    setmsg "$work/p/bah" "Hello, buildah $i!"
    add inc_bah bahb -t hello "$work/p/bah"
    setmsg "$work/p/bk" "Hello, BuildKit $i!"
    add inc_bk bkb -t hello "$work/p/bk"

    log "round $i/$runs: exports"
    rm -f "$work"/x-*.tar
    add exp1_cs cs "$M" export hello:multi -o "$work/x-cs1.tar"
    add exp_cs cs "$M" export hello:multi -o "$work/x-cs.tar"
    add expo_cs csb "$M" -t hello:multi -o "type=oci,dest=$work/x-cso.tar" "$work/p/cs"
    [ -z "${CSTORE_BEFORE:-}" ] || add exp_before "$CSTORE_BEFORE" --root "$M" export hello:multi -o "$work/x-before.tar"
    add exp_bk dk save -o "$work/x-bk.tar" hello
    add exp_bah bah push -q hello "oci-archive:$work/x-bah.tar"

    log "round $i/$runs: gcc builds (--no-cache)"
    add gcc_fuse csb "$M" --snapshotter fuse --no-cache -t app "$gccp"
    add gcc_unpack csb "$M" --snapshotter unpack --no-cache -t app "$gccp"
    add gcc_bk bkb --no-cache -t app "$gccp"
    add gcc_bah bahb --no-cache -t app "$gccp"

    log "round $i/$runs: cold builds, base present"
    r=$work/cold
    rm -rf "$r"
    cs "$r" load "$bases/golang.docker.tar" >/dev/null
    cs "$r" load "$bases/busybox.docker.tar" >/dev/null
    # twice: auto serves a base on its first use and unpacks it on the second (hot)
    csb "$r" -t warm "$work/warm" >/dev/null
    csb "$r" --no-cache -t warm "$work/warm" >/dev/null
    mkproj "$work/p/cold" "Hello, cold $i!"
    add cold_cs csb "$r" -t hello:multi "$work/p/cold"
    rm -rf "$r"
    dk image rm -f hello-cold >/dev/null 2>&1 || true
    dk builder prune -af >/dev/null
    add cold_bk bkb -t hello-cold "$work/p/cold"
    bah rmi -f hello-cold >/dev/null 2>&1 || true
    bah rmi --prune >/dev/null 2>&1 || true
    rm -rf "$work/bah-tmp"/buildah-cache-*
    add cold_bah bahb -t hello-cold "$work/p/cold"

    log "round $i/$runs: fresh stores: load, first build, disk"
    # cstore: a new root
    r=$work/fresh
    rm -rf "$r"
    add load_cs cs "$r" load "$bases/golang.docker.tar"
    cs "$r" load "$bases/busybox.docker.tar" >/dev/null
    add first_cs csb "$r" -t hello:multi "$work/p/cold"
    addv disk_cs "$(sizeb "$r")"
    rm -rf "$r"
    # docker: every image removed, build cache pruned, then the loads into the emptied data root
    dk image rm -f $(dk image ls -aq) >/dev/null 2>&1 || true
    dk builder prune -af >/dev/null
    add load_bk dk load -i "$bases/golang.docker.tar"
    dk load -q -i "$bases/busybox.docker.tar" >/dev/null
    add first_bk bkb -t hello-cold "$work/p/cold"
    addv disk_bk "$(sizeb "$work/docker")"
    # buildah: a new root
    bah rm -a >/dev/null 2>&1 || true
    bah rmi -a -f >/dev/null 2>&1 || true
    grep -o " $work/bah[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work/bah" "$work/bah-tmp"
    mkdir -p "$work/bah-tmp"
    add load_bah bah pull -q "docker-archive:$bases/golang.docker.tar"
    bah pull -q "docker-archive:$bases/busybox.docker.tar" >/dev/null
    add first_bah bahb -t hello-cold "$work/p/cold"
    addv disk_bah "$(sizeb "$work/bah/root")"
    # the peers' main state back for the next round (loads and builds untimed)
    if [ "$i" -lt "$runs" ]; then
        dk load -q -i "$bases/gcc.docker.tar" >/dev/null
        bah pull -q "docker-archive:$bases/gcc.docker.tar" >/dev/null
        bkb -t hello "$work/p/bk" >/dev/null
        bahb -t hello "$work/p/bah" >/dev/null 2>&1
    fi
done

# ---- report ----
med() { printf '%s\n' ${S[$1]} | median; }
span() { printf '%s\n' ${S[$1]} | sort -g | awk -v u="$2" 'NR==1 {lo=$1} {hi=$1} END {if (u=="s") printf "%.2f-%.2f", lo, hi; else printf "%.0f-%.0f", lo*1000, hi*1000}'; }
cell() { # KEY UNIT(s|ms|MB)
    [ -n "${S[$1]:-}" ] || { echo -; return; }
    case $2 in
    s) printf '%.2f s (%s)' "$(med "$1")" "$(span "$1" s)" ;;
    ms) printf '%.1f ms (%s)' "$(echo "$(med "$1") * 1000" | bc -l)" "$(span "$1" ms)" ;;
    MB) printf '%.0f MB' "$(echo "$(med "$1") / 1000000" | bc -l)" ;;
    esac
}
rat() { printf '%.2f' "$(echo "$(med "$1") / $(med "$2")" | bc -l)"; }
goal() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo "met ($2)"; else echo "**not met** ($2)"; fi; }
m() { med "$1"; }
g_noop=$(goal "$(m noop_cs) * 16 <= $(m noop_bk)" "1/$(printf '%.0f' "$(echo "$(m noop_bk) / $(m noop_cs)" | bc -l)") of BuildKit; goal 1/16")
g_noop5=$(goal "$(m noop_cs) <= 0.005" "goal <= 5 ms")
g_inc=$(goal "$(m inc_cs) <= 0.8 * $(m inc_bk)" "$(rat inc_cs inc_bk)x BuildKit; goal <= 0.8x")
g_first=$(goal "$(m first_cs) <= $(m cold_bk) + 0.5" "$(printf '%+.2f' "$(echo "$(m first_cs) - $(m cold_bk)" | bc -l)") s vs BuildKit's cold build; goal <= +0.5 s")
g_load=$(goal "$(m load_bk) >= 6 * $(m load_cs)" "$(rat load_bk load_cs)x faster than docker load; goal >= 6x")
g_exp=$(goal "$(m exp_cs) <= $(m exp_bk)" "$(rat exp_cs exp_bk)x docker save; goal <= 1x")
g_exp20=$(goal "$(m exp_cs) <= 0.020" "goal <= 20 ms")
g_disk=$(goal "$(m disk_cs) * 2 <= $(m disk_bk)" "$(rat disk_cs disk_bk)x BuildKit's data root; goal <= 0.5x")
bk_ver="docker.io $(dk version -f '{{.Server.Version}}') (BuildKit in dockerd, overlay2)"

cat <<EOF
## cstore vs BuildKit vs buildah, issue 11's table ($(date -u +%Y-%m-%dT%H:%MZ))

- command: \`$([ -n "${CSTORE_BEFORE:-}" ] && echo "CSTORE_BEFORE=$CSTORE_BEFORE ")bash bench/bench_compare.sh $runs\` (one command; dockerd started and stopped by it)
- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB, $(df -T "$work" | awk 'NR==2 {print $2}') under /var/tmp, kernel $(uname -r); load average at start $load_start, at end $(cut -d" " -f1-3 /proc/loadavg)
- versions: cstore $(git -C "$src" describe --always --dirty) (Release), $bk_ver, $(buildah --version | cut -d' ' -f1-3), $(runc --version | head -1)
- medians of $runs rounds (no-op: $((runs * (noop_runs / runs + 1)))), min-max in parentheses; the tools interleaved in every round; every timed command after \`sync\`; cstore builds with the default snapshotter (auto) unless said

| measure | cstore | BuildKit | buildah | goal (issue 11) |
|---|---|---|---|---|
| no-op rebuild of hello-go | $(cell noop_cs ms) | $(cell noop_bk ms) | $(cell noop_bah ms) | $g_noop; $g_noop5 |
| one-line change in app.go | $(cell inc_cs s) | $(cell inc_bk s) | $(cell inc_bah s) | $g_inc |
| cold build, base already present (cstore: golang hot and unpacked by an unrelated RUN, twice) | $(cell cold_cs s) | $(cell cold_bk s) | $(cell cold_bah s) | - |
| first build after loading the bases (fresh store / emptied data root) | $(cell first_cs s) | $(cell first_bk s) | $(cell first_bah s) | $g_first |
| load golang (cstore load / docker load / buildah pull docker-archive) | $(cell load_cs s) | $(cell load_bk s) | $(cell load_bah s) | $g_load |
| export hello:multi, first after the build (cstore gzip oci-archive) | $(cell exp1_cs ms) | - | - | - |
| export hello:multi, layer blobs cached (cstore export / docker save / buildah push oci-archive) | $(cell exp_cs ms) | $(cell exp_bk ms) | $(cell exp_bah ms) | $g_exp; $g_exp20 |
| the same export by \`\$CSTORE_BEFORE\` (${CSTORE_BEFORE:-not given}) | $(cell exp_before ms) | - | - | - |
| no-op build with \`-o type=oci,dest=F\` (cstore) | $(cell expo_cs ms) | - | - | - |
| store on disk after loading both bases and building hello-go (du -sbx) | $(cell disk_cs MB) | $(cell disk_bk MB) | $(cell disk_bah MB) | $g_disk |
| gcc, RUN-heavy, --no-cache: cstore \`--snapshotter fuse\` | $(cell gcc_fuse s) | $(cell gcc_bk s) | $(cell gcc_bah s) | fuse / unpack $(rat gcc_fuse gcc_unpack)x |
| gcc, RUN-heavy, --no-cache: cstore \`--snapshotter unpack\` | $(cell gcc_unpack s) | | | unpack / BuildKit $(rat gcc_unpack gcc_bk)x |

gcc build: FROM the gcc base of tests/mkbase_gcc.sh (Debian bookworm minbase + gcc, libc6-dev,
$(printf '%.0f' "$(echo "$(stat -c %s "$bases/gcc.docker.tar") / 1000000" | bc -l)") MB), COPY of 21 generated C files ($gcc_lines lines, 8 system headers each),
\`RUN gcc -O2 -c *.c && gcc -o app *.o -lm\`; the program printed $gcc_out. Fuse: each build starts its own
server (nothing of the base in its page cache); unpack: gcc's snapshot made before the rounds.
BuildKit's "first build after loading" runs after every image was removed and the build cache pruned,
then \`docker load\` of golang and busybox (the data root itself stays: dockerd keeps running).
EOF
