#!/usr/bin/env bash
# bench_fuse.sh - the FUSE snapshotter against unpacked snapshots (issue 11, item 1), same run:
#   1. `go build` of examples/hello-go with an empty GOCACHE inside `cstore run` on the golang base
#      plus the sources: first build in a fresh server (FUSE page cache empty, the store's file in
#      the page cache: what every build pays), again in the same container (warm), and after
#      echo 3 > /proc/sys/vm/drop_caches (cold). busybox `time` inside the container: the container
#      start is not counted.
#   2. the whole hello-go build: first build after loading the bases into a fresh store, one-line
#      change rebuild, no-op rebuild; and the store on disk (root dir incl. snapshots) after it.
#
#   bash bench/bench_fuse.sh [RUNS]      (default 3; medians, min-max in parentheses)
#
# Needs root, /dev/fuse, runc, a Release build in build/ and the bases of tests/mkbase.sh. Prints a
# Markdown report (bench/RESULTS-fuse.md holds the last one recorded); progress on stderr.
. "$(dirname "$0")/lib.sh"
runs=${1:-3}
bench_init fuse
bench_bases
log() { echo "bench: $*" >&2; }
load_start=$(cut -d" " -f1-3 /proc/loadavg)
cs() { "$cstore" --root "$1" "${@:2}"; }
csb() { cs "$1" build --progress quiet --network none "${@:2}"; }
span() { printf '%s\n' "$@" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}'; }
cell() { printf '%.2f s (%s)' "$(printf '%s\n' "$@" | median)" "$(span "$@")"; }
# the seconds of busybox time's "real 0m 1.23s" lines of a log
reals() { sed -n 's/^real[[:space:]]*\([0-9]*\)m \([0-9.]*\)s$/\1 \2/p' "$1" | awk '{print $1*60+$2}'; }

# ---- 1. go build inside the container ----
st=$work/st
cs "$st" load "$bases/golang.docker.tar" >/dev/null
mkdir -p "$work/src"
cp "$src/examples/hello-go/go.mod" "$src/examples/hello-go/app.go" "$work/src/"
printf 'FROM golang\nCOPY go.mod app.go /src/\n' > "$work/src/Dockerfile"
csb "$st" -t hellosrc "$work/src" >/dev/null
gob='cd /src; for i in 1 2; do rm -rf /tmp/gc /tmp/h; GOCACHE=/tmp/gc CGO_ENABLED=0 time go build -o /tmp/h . 2>&1 | grep ^real; done'
declare -A first warm cold
for m in unpack fuse; do
    cs "$st" run --snapshotter "$m" hellosrc true >/dev/null # unpack: make the snapshots
    f=(); w=(); c=()
    for i in $(seq "$runs"); do
        log "go build through $m ($i/$runs)"
        cs "$st" run --snapshotter "$m" --network none hellosrc sh -c "$gob" > "$work/g.log" 2>&1
        mapfile -t t < <(reals "$work/g.log")
        f+=("${t[0]}"); w+=("${t[1]}")
        sync; echo 3 > /proc/sys/vm/drop_caches
        cs "$st" run --snapshotter "$m" --network none hellosrc sh -c "$gob" > "$work/g.log" 2>&1
        mapfile -t t < <(reals "$work/g.log")
        c+=("${t[0]}")
    done
    first[$m]=$(cell "${f[@]}"); warm[$m]=$(cell "${w[@]}"); cold[$m]=$(cell "${c[@]}")
done

# ---- 2. whole builds ----
mkproj() { rm -rf "$1"; cp -r "$src/examples/hello-go" "$1"; }
setmsg() { sed -i "s/fmt.Println(.*)/fmt.Println(\"$2\")/" "$1/app.go"; }
declare -A fb oc noop disk
for m in unpack fuse; do
    a=(); b=(); c=(); d=()
    for i in $(seq "$runs"); do
        log "hello-go builds through $m ($i/$runs)"
        r=$work/b-$m-$i
        cs "$r" load "$bases/golang.docker.tar" >/dev/null
        cs "$r" load "$bases/busybox.docker.tar" >/dev/null
        mkproj "$work/p"
        sync
        a+=("$(wall csb "$r" --snapshotter "$m" -t hello "$work/p")")
        d+=("$(du -sbx "$r" | cut -f1)")
        setmsg "$work/p" "changed $i"
        sync
        b+=("$(wall csb "$r" --snapshotter "$m" -t hello "$work/p")")
        c+=("$(wall csb "$r" --snapshotter "$m" -t hello "$work/p")")
        rm -rf "$r"
    done
    fb[$m]=$(cell "${a[@]}"); oc[$m]=$(cell "${b[@]}"); noop[$m]=$(cell "${c[@]}")
    disk[$m]=$(printf '%.0f MB' "$(printf '%s\n' "${d[@]}" | median | awk '{print $1/1e6}')")
done

cat <<EOF2
## FUSE snapshotter vs unpacked snapshots ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r))

\`bash bench/bench_fuse.sh $runs\`: medians of $runs (min-max). Load average at start: $load_start.

| go build of hello-go, empty GOCACHE, in \`cstore run\` | unpack | fuse |
|---|---|---|
| first build in the container (fresh server; store file cached) | ${first[unpack]} | ${first[fuse]} |
| again, same container (warm page cache) | ${warm[unpack]} | ${warm[fuse]} |
| after drop_caches (cold) | ${cold[unpack]} | ${cold[fuse]} |

| hello-go build (\`cstore build --snapshotter S\`) | unpack | fuse |
|---|---|---|
| first build after loading golang + busybox | ${fb[unpack]} | ${fb[fuse]} |
| one-line change in app.go | ${oc[unpack]} | ${oc[fuse]} |
| no-op rebuild | ${noop[unpack]} | ${noop[fuse]} |
| store root on disk after the first build (du -sbx, incl. snapshots) | ${disk[unpack]} | ${disk[fuse]} |
EOF2
