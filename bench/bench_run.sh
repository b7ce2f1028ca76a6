#!/usr/bin/env bash
# bench_run.sh - issue 4's benchmarks: the multi-stage Go build of examples/hello-go with RUN,
# cstore against `buildah bud --layers` and BuildKit (Debian's docker.io, DOCKER_BUILDKIT=1) in
# the same run, with the base images already loaded.
#
#   bash bench/bench_run.sh [RUNS]      (default 3; no-op rebuilds use RUNS+2; medians)
#
# Needs a Release build in build/, runc, buildah, docker.io (dockerd is started here with its own
# data root, exec root and socket under a temporary directory, and stopped on exit) and the
# base images of tests/mkbase.sh. Every tool builds its own copy of the example. RUN steps run
# with --network none in all three tools. Prints a Markdown report on stdout
# (bench/RESULTS-run.md holds the last one recorded); progress goes to stderr.
. "$(dirname "$0")/lib.sh"
runs=${1:-3}
noop_runs=$((runs + 2))
notes=()
load_start=$(cut -d" " -f1-3 /proc/loadavg)

bench_stop() { bench_dockerd_stop; }
bench_init run
trap 'exit 130' INT TERM

for t in buildah runc jq bc go; do
    command -v "$t" >/dev/null || { echo "bench: '$t' not found" >&2; exit 1; }
done
bench_bases
log() { echo "bench: $*" >&2; }

# "min-max" of the samples, in ms or s
declare -A R
span() { local k=$1 u=$2; shift 2; R[$k]=$(printf '%s\n' "$@" | sort -g | awk -v u="$u" 'NR==1 {lo=$1} {hi=$1} END {if (u=="s") printf "%.2f-%.2f", lo, hi; else printf "%.0f-%.0f", lo*1000, hi*1000}'); }
# med SAMPLES...: their median.
med() { printf '%s\n' "$@" | median; }
# measured NAME UNIT SAMPLES...: NAME = the samples' median, R[NAME] = their span.
measured() { local k=$1 u=$2; shift 2; printf -v "$k" %s "$(med "$@")"; span "$k" "$u" "$@"; }
# measured3 PREFIX UNIT: PREFIX_cs, PREFIX_bah and PREFIX_bk (n/a without BuildKit) from the samples
# of cstore in a, buildah in c and BuildKit in d.
measured3() {
    measured "$1_cs" "$2" "${a[@]}"
    measured "$1_bah" "$2" "${c[@]}"
    if [ "$bk" = 1 ]; then measured "$1_bk" "$2" "${d[@]}"; else printf -v "$1_bk" n/a; R[$1_bk]=n/a; fi
}
# seconds of wall time of a command (lib.sh's wall_sync): `sync` first, since cstore's snapshots
# could end with syncfs(2), which would otherwise also flush what earlier steps left dirty.
wall() { wall_sync "$@"; }
ms() { [ "$1" = n/a ] && { echo n/a; return; }; printf '%.1f ms' "$(echo "$1 * 1000" | bc -l)"; }
sec() { [ "$1" = n/a ] && { echo n/a; return; }; printf '%.2f s' "$1"; }
cell() { local v=${!1}; [ "$v" = n/a ] && { echo n/a; return; }; if [ "$2" = s ]; then printf '%.2f s (%s)' "$v" "${R[$1]}"; else printf '%.1f ms (%s)' "$(echo "$v * 1000" | bc -l)" "${R[$1]}"; fi; }
mb() { [ "$1" = n/a ] && { echo n/a; return; }; printf '%.1f MB' "$(echo "$1 / 1000000" | bc -l)"; }
sizeb() { du -sbx "$1" 2>/dev/null | cut -f1; }

cs() { "$cstore" --root "$1" "${@:2}"; }
csb() { cs "$1" build --progress quiet --network none "${@:2}"; }
csdu() { cs "$1" du --json | jq -r ".$2"; }
# buildah: its own root and runroot; TMPDIR holds its cache mounts (buildah-cache-UID)
bah() { TMPDIR=$work/bah-tmp buildah --root "$work/bah/root" --runroot "$work/bah/run" --storage-driver overlay "$@"; }
bahb() { bah bud --layers --pull=never --network none -q "$@"; }
mkdir -p "$work/bah-tmp"
bkb() { DOCKER_BUILDKIT=1 dk build --network none -q "$@"; }

# a copy of the example printing MSG; BuildKit's without the `# syntax=` line (see the notes)
mkproj() {
    local dir=$1 msg=$2 tool=$3
    rm -rf "$dir"
    cp -r "$src/examples/hello-go" "$dir"
    sed -i "s/fmt.Println(.*)/fmt.Println(\"$msg\")/" "$dir/app.go"
    [ "$tool" = bk ] && sed -i '/^# syntax=/d' "$dir/Dockerfile"
    return 0
}
setmsg() { sed -i "s/fmt.Println(.*)/fmt.Println(\"$2\")/" "$1/app.go"; }
# an unrelated RUN on golang, to unpack golang's snapshot in a cstore root
mkdir -p "$work/warm"
printf 'FROM golang\nRUN go version > /go-version\n' > "$work/warm/Dockerfile"

# ---- BuildKit: start Debian's dockerd ----
bk=1
if ! command -v dockerd >/dev/null || [ ! -x "$docker_bin" ]; then
    bk=0; notes+=("BuildKit not measured: dockerd or $docker_bin missing (apt-get install -y docker.io).")
else
    if ! bench_dockerd_start; then
        bk=0; notes+=("BuildKit not measured: dockerd did not start: $(tail -1 "$work/dockerd.log")")
    fi
fi

# ---- loads (timed once, for reference) ----
log "loading the bases"
mkdir -p "$work/p"
t_cs_load=$(wall cs "$work/cs" load "$bases/golang.docker.tar")
cs "$work/cs" load "$bases/busybox.docker.tar" >/dev/null
t_bah_load=$(wall bah pull -q "docker-archive:$bases/golang.docker.tar")
bah pull -q "docker-archive:$bases/busybox.docker.tar" >/dev/null
t_bk_load=n/a
if [ $bk = 1 ]; then
    t_bk_load=$(wall dk load -i "$bases/golang.docker.tar")
    dk load -i "$bases/busybox.docker.tar" >/dev/null
fi

# ---- cold builds ----
log "cold builds"
a=(); b=(); c=(); d=()
for i in $(seq "$runs"); do
    # cstore, a fresh root with just the loads: golang's tree is unpacked during the build
    r=$work/cold$i
    cs "$r" load "$bases/golang.docker.tar" >/dev/null
    cs "$r" load "$bases/busybox.docker.tar" >/dev/null
    mkproj "$work/p/cs" "Hello, World!" cs
    t=$(wall csb "$r" -t hello "$work/p/cs"); a+=("$t")
    rm -rf "$r"
    # cstore, a fresh root where an unrelated RUN on golang ran first: the snapshot exists
    cs "$r" load "$bases/golang.docker.tar" >/dev/null
    cs "$r" load "$bases/busybox.docker.tar" >/dev/null
    csb "$r" -t warm "$work/warm" >/dev/null
    t=$(wall csb "$r" -t hello "$work/p/cs"); b+=("$t")
    rm -rf "$r"
    # buildah: previous results and intermediate images removed, cache mounts emptied
    bah rmi -f hello >/dev/null 2>&1 || true
    bah rmi --prune >/dev/null 2>&1 || true
    bah rm -a >/dev/null 2>&1 || true
    rm -rf "$work/bah-tmp"/buildah-cache-*
    mkproj "$work/p/bah" "Hello, World!" bah
    t=$(wall bahb -t hello "$work/p/bah"); c+=("$t")
    # BuildKit: docker builder prune -af (build cache and cache mounts), result removed
    if [ $bk = 1 ]; then
        dk image rm -f hello >/dev/null 2>&1 || true
        dk builder prune -af >/dev/null
        mkproj "$work/p/bk" "Hello, World!" bk
        t=$(wall bkb -t hello "$work/p/bk"); d+=("$t")
    fi
done
measured3 cold s
measured cold_cs_snap s "${b[@]}"

# the main roots: the measured project built once in each
csb "$work/cs" -t hello "$work/p/cs" >/dev/null
[ "$(cs "$work/cs" run --network none hello)" = "Hello, World!" ] || { log "cstore's image does not print Hello, World!"; exit 1; }
out=$(bah run --network none "$(bah from -q --pull=never hello)" hello 2>/dev/null) || true
bah rm -a >/dev/null 2>&1 || true
[ "$out" = "Hello, World!" ] || notes+=("buildah's image printed '$out' instead of Hello, World!")
if [ $bk = 1 ]; then
    out=$(dk run --rm --network none hello 2>&1) || true
    [ "$out" = "Hello, World!" ] || notes+=("BuildKit's image printed '$out' instead of Hello, World!")
fi

# ---- no-op rebuilds ----
log "no-op rebuilds"
a=(); c=(); d=()
for i in $(seq "$noop_runs"); do
    t=$(wall csb "$work/cs" -t hello "$work/p/cs"); a+=("$t")
    t=$(wall bahb -t hello "$work/p/bah"); c+=("$t")
    if [ $bk = 1 ]; then t=$(wall bkb -t hello "$work/p/bk"); d+=("$t"); fi
done
measured3 noop ms

# ---- one-line change in app.go ----
log "rebuilds after a one-line change"
# the go build alone: the host's Go (the same Debian toolchain as the golang base), warm cache
mkproj "$work/p/host" "Hello, World!" host
(cd "$work/p/host" && GOCACHE=$work/gocache CGO_ENABLED=0 go build -o "$work/hello-host" .)
a=(); c=(); d=(); g=(); cb=(); cc=()
for i in $(seq "$runs"); do
    setmsg "$work/p/host" "Hello, host $i!"
    t=$(cd "$work/p/host" && wall env GOCACHE="$work/gocache" CGO_ENABLED=0 go build -o "$work/hello-host" .); g+=("$t")
    setmsg "$work/p/cs" "Hello, cstore $i!"
    s0=$(csdu "$work/cs" stored_bytes); n0=$(csdu "$work/cs" chunks)
    t=$(wall csb "$work/cs" -t hello "$work/p/cs"); a+=("$t")
    cb+=("$(( $(csdu "$work/cs" stored_bytes) - s0 ))"); cc+=("$(( $(csdu "$work/cs" chunks) - n0 ))")
    setmsg "$work/p/bah" "Hello, buildah $i!"
    t=$(wall bahb -t hello "$work/p/bah"); c+=("$t")
    if [ $bk = 1 ]; then
        setmsg "$work/p/bk" "Hello, BuildKit $i!"
        t=$(wall bkb -t hello "$work/p/bk"); d+=("$t")
    fi
done
[ "$(cs "$work/cs" run --network none hello)" = "Hello, cstore $runs!" ] || { log "cstore's rebuilt image prints the wrong message"; exit 1; }
# where cstore's time goes: one more change with plain progress (0.1 s resolution), and the
# executor alone (overlay mount of golang's snapshot + runc start of `true`)
setmsg "$work/p/cs" "Hello, cstore plain!"
cs "$work/cs" build --progress plain --network none -t hello "$work/p/cs" >"$work/plain.log" 2>&1
run_step=$(awk '/RUN --mount/ {r=1} r && /DONE/ {print $NF; exit}' "$work/plain.log")
setmsg "$work/p/cs" "Hello, cstore $runs!"
csb "$work/cs" -t hello "$work/p/cs" >/dev/null
x=()
for i in $(seq "$noop_runs"); do t=$(wall cs "$work/cs" run --network none golang true); x+=("$t"); done
exec_cs=$(med "${x[@]}")
measured3 inc ms
inc_go=$(med "${g[@]}")
inc_cs_bytes=$(med "${cb[@]}")
inc_cs_chunks=$(med "${cc[@]}")
bin_size=$(stat -c %s "$work/hello-host")
bin_zst=$(zstd -q -1 -c "$work/hello-host" | wc -c)

# ---- committing the final stage: only a LABEL of the final stage changes ----
log "final-stage-only rebuilds"
a=(); c=(); d=(); cb=(); cc=(); cn=(); cm=()
for i in $(seq "$runs"); do
    for p in cs bah bk; do
        sed -i '/^LABEL bench.run=/d' "$work/p/$p/Dockerfile"
        echo "LABEL bench.run=$i" >> "$work/p/$p/Dockerfile"
    done
    s0=$(csdu "$work/cs" stored_bytes); n0=$(csdu "$work/cs" chunks); k0=$(csdu "$work/cs" contents)
    m0=$(stat -c %s "$work/cs/data.mdb")
    t=$(wall csb "$work/cs" -t hello "$work/p/cs"); a+=("$t")
    cb+=("$(( $(csdu "$work/cs" stored_bytes) - s0 ))"); cc+=("$(( $(csdu "$work/cs" chunks) - n0 ))")
    cn+=("$(( $(csdu "$work/cs" contents) - k0 ))"); cm+=("$(( $(stat -c %s "$work/cs/data.mdb") - m0 ))")
    t=$(wall bahb -t hello "$work/p/bah"); c+=("$t")
    if [ $bk = 1 ]; then t=$(wall bkb -t hello "$work/p/bk"); d+=("$t"); fi
done
measured3 fin ms
fin_bytes=$(med "${cb[@]}")
fin_chunks=$(med "${cc[@]}")
fin_contents=$(med "${cn[@]}")
fin_mdb=$(med "${cm[@]}")

# ---- disk: five projects differing only in their message ----
log "disk: five projects"
# fresh stores for cstore and buildah; docker's data root emptied of builds
rm -rf "$work/cs"
bah rmi -a -f >/dev/null 2>&1 || true
bah rm -a >/dev/null 2>&1 || true
grep -o " $work/bah[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
rm -rf "$work/bah" "$work/bah-tmp"; mkdir -p "$work/bah-tmp"
cs "$work/cs" load "$bases/golang.docker.tar" >/dev/null
cs "$work/cs" load "$bases/busybox.docker.tar" >/dev/null
bah pull -q "docker-archive:$bases/golang.docker.tar" >/dev/null
bah pull -q "docker-archive:$bases/busybox.docker.tar" >/dev/null
if [ $bk = 1 ]; then
    dk image rm -f hello >/dev/null 2>&1 || true
    dk builder prune -af >/dev/null
fi
declare -A D
# sizes of the state $1: cstore content, snapshots, cache mounts, whole root; buildah; docker
measure() {
    D[$1,mdb]=$(sizeb "$work/cs/data.mdb")
    D[$1,snap]=$(sizeb "$work/cs/snapshots" || true); D[$1,snap]=${D[$1,snap]:-0}
    D[$1,cache]=$(sizeb "$work/cs/cache-mounts" || true); D[$1,cache]=${D[$1,cache]:-0}
    D[$1,csroot]=$(sizeb "$work/cs")
    D[$1,stored]=$(csdu "$work/cs" stored_bytes)
    D[$1,bah]=$(sizeb "$work/bah/root")
    D[$1,bk]=n/a; [ $bk = 1 ] && D[$1,bk]=$(sizeb "$work/docker")
    return 0
}
measure base
for i in 1 2 3 4 5; do
    for p in cs bah bk; do mkproj "$work/p/$p$i" "Hello from project $i!" "$p"; done
    csb "$work/cs" -t "hello$i" "$work/p/cs$i" >/dev/null
    bahb -t "hello$i" "$work/p/bah$i" >/dev/null 2>&1
    if [ $bk = 1 ]; then bkb -t "hello$i" "$work/p/bk$i" >/dev/null; fi
    if [ $i = 1 ]; then measure one; fi
done
measure five
log "disk: remove and prune"
cs "$work/cs" rmi hello1 hello2 hello3 hello4 hello5 >/dev/null
t_gc=$(wall cs "$work/cs" gc)
bah rmi hello1 hello2 hello3 hello4 hello5 >/dev/null
bah rmi --prune >/dev/null 2>&1 || true
bah rm -a >/dev/null 2>&1 || true
if [ $bk = 1 ]; then
    dk image rm hello1 hello2 hello3 hello4 hello5 >/dev/null
    dk builder prune -af >/dev/null
fi
measure gc
t_gc0=$(wall cs "$work/cs" gc --keep-storage 0B)
measure gc0
t_gcc=$(wall cs "$work/cs" gc --keep-storage 0B --compact)
measure gcc

# ---- report ----
cs_ver=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)
bk_ver=n/a
[ $bk = 1 ] && bk_ver="docker.io $(dk version -f '{{.Server.Version}}') (BuildKit built into dockerd), containerd $(dk version -f '{{range .Server.Components}}{{if eq .Name "containerd"}}{{.Version}}{{end}}{{end}}')"
rat() { [ "$1" = n/a ] || [ "$2" = n/a ] && { echo n/a; return; }; printf '%.1fx' "$(echo "$1 / $2" | bc -l)"; }

echo "# cstore RUN benchmarks: examples/hello-go, cstore vs buildah vs BuildKit"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- machine: $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB, $(df -T "$work" | awk 'NR==2 {print $2}') under $work"
echo "- versions: cstore $cs_ver (Release build), $(buildah --version), $bk_ver, $(runc --version | head -1), $(go version | cut -d' ' -f3) (host and golang base)"
echo "- input: examples/hello-go (multi-stage: golang with \`RUN --mount=type=cache,target=/root/.cache/go-build go build\` -> busybox), one copy per tool; RUN with --network none in all three; bases from tests/mkbase.sh already loaded"
echo "- load average (1/5/15 min) at start: $load_start, at end: $(cut -d" " -f1-3 /proc/loadavg) (other work on the machine shows here)"
echo "- runs: $runs ($noop_runs for no-op rebuilds), medians of wall time"
echo
echo "## Build times"
echo
echo "| build (median, min-max) | cstore | buildah bud --layers | BuildKit | buildah / cstore | BuildKit / cstore |"
echo "|---|---|---|---|---|---|"
echo "| cold, golang snapshot not yet unpacked (fresh root, just the loads) | $(cell cold_cs s) | $(cell cold_bah s) | $(cell cold_bk s) | $(rat "$cold_bah" "$cold_cs") | $(rat "$cold_bk" "$cold_cs") |"
echo "| cold, golang snapshot unpacked (an unrelated RUN on golang first) | $(cell cold_cs_snap s) | - | - | $(rat "$cold_bah" "$cold_cs_snap") | $(rat "$cold_bk" "$cold_cs_snap") |"
echo "| no-op rebuild | $(cell noop_cs ms) | $(cell noop_bah ms) | $(cell noop_bk ms) | $(rat "$noop_bah" "$noop_cs") | $(rat "$noop_bk" "$noop_cs") |"
echo "| one-line change in app.go | $(cell inc_cs ms) | $(cell inc_bah ms) | $(cell inc_bk ms) | $(rat "$inc_bah" "$inc_cs") | $(rat "$inc_bk" "$inc_cs") |"
echo "| LABEL change in the final stage only | $(cell fin_cs ms) | $(cell fin_bah ms) | $(cell fin_bk ms) | $(rat "$fin_bah" "$fin_cs") | $(rat "$fin_bk" "$fin_cs") |"
echo
echo "Cold: cstore's fresh roots have an empty cache-mount directory; buildah's intermediate images and"
echo "cache mounts are removed before each run (its bases stay unpacked in overlay storage, as BuildKit's"
echo "do); BuildKit runs after \`docker builder prune -af\`. Loading the golang base (once, for reference):"
echo "cstore $(sec "$t_cs_load"), buildah pull $(sec "$t_bah_load"), docker load $(sec "$t_bk_load")."
echo
echo "One-line change: \`go build\` alone, with the host's Go 1.19 and a warm cache, takes $(ms "$inc_go");"
echo "cstore's build beyond it: $(ms "$(echo "$inc_cs - $inc_go" | bc -l)") (runc start, overlay mount, ingest of"
echo "the RUN's upper dir, the final stage, the image). With \`--progress plain\` the RUN step reports $run_step;"
echo "\`cstore run --network none golang true\` (overlay mount of the snapshot, bundle, runc start and teardown)"
echo "takes $(ms "$exec_cs"). Content written per rebuild: $inc_cs_bytes bytes stored"
echo "in $inc_cs_chunks new chunks; the new binary is $bin_size bytes ($bin_zst with zstd -1), so it is stored once"
echo "and the final stage's \`COPY --from\` writes none."
echo
echo "## Committing the final stage (cstore; a LABEL of the final stage changes)"
echo
echo "| per build, median | cstore |"
echo "|---|---|"
echo "| wall time | $(ms "$fin_cs") |"
echo "| content bytes stored (du --json stored_bytes) | $fin_bytes |"
echo "| new chunks / new contents | $fin_chunks / $fin_contents |"
echo "| data.mdb growth | $fin_mdb bytes |"
echo
echo "## Disk: five copies of the project differing only in their message, each built and tagged"
echo
echo "Fresh cstore and buildah stores; docker's data root after \`docker builder prune -af\`. \`du -sbx\`."
echo
echo "| state | cstore content (data.mdb) | cstore snapshots | cstore cache mounts | cstore root | buildah storage root | docker data root |"
echo "|---|---|---|---|---|---|---|"
row() { echo "| $1 | $(mb "${D[$2,mdb]}") | $(mb "${D[$2,snap]}") | $(mb "${D[$2,cache]}") | $(mb "${D[$2,csroot]}") | $(mb "${D[$2,bah]}") | $(mb "${D[$2,bk]}") |"; }
row "bases loaded" base
row "after project 1" one
row "after projects 1-5" five
row "rmi x5 + \`cstore gc\` / \`buildah rmi\` + \`rmi --prune\` + \`rm -a\` / \`docker image rm\` + \`builder prune -af\`" gc
row "then \`cstore gc --keep-storage 0B\` (no build cache kept, as prune -af)" gc0
row "then \`cstore gc --keep-storage 0B --compact\`" gcc
echo
g5() { [ "${D[five,$1]}" = n/a ] && { echo n/a; return; }; echo $(( ${D[five,$1]} - ${D[base,$1]} )); }
g4() { [ "${D[five,$1]}" = n/a ] && { echo n/a; return; }; echo $(( (${D[five,$1]} - ${D[one,$1]}) / 4 )); }
gp() { [ "$1" = n/a ] && { echo n/a; return; }; echo $(( $1 / 5 )); }
echo "| growth | cstore content | cstore root | buildah | docker |"
echo "|---|---|---|---|---|"
echo "| bases loaded -> 5 projects, per project | $(mb "$(gp "$(g5 mdb)")") | $(mb "$(gp "$(g5 csroot)")") | $(mb "$(gp "$(g5 bah)")") | $(mb "$(gp "$(g5 bk)")") |"
echo "| projects 2-5, per project (first build's one-time costs excluded) | $(mb "$(g4 mdb)") | $(mb "$(g4 csroot)") | $(mb "$(g4 bah)") | $(mb "$(g4 bk)") |"
echo
echo "\`cstore gc\` with its default policy keeps build cache entries used within 168h (up to 10GB), so"
echo "right after rmi it frees little; \`--keep-storage 0B\` drops them, as \`docker builder prune -af\` does."
echo "Snapshots are a cache: golang's stays while golang is tagged."
echo
echo "cstore's chunk values after the loads: $(mb "${D[base,stored]}") (zstd), after five projects $(mb "${D[five,stored]}")."
echo "gc times: \`cstore gc\` $(ms "$t_gc"), \`--keep-storage 0B\` $(ms "$t_gc0"), with \`--compact\` $(ms "$t_gcc")."
echo
echo "## Notes"
echo
[ $bk = 1 ] && notes+=("BuildKit: the example's \`# syntax=docker/dockerfile:1\` line makes BuildKit resolve docker.io/docker/dockerfile:1 from the registry, which fails offline (\`failed to do request: Head \"https://registry-1.docker.io/v2/docker/dockerfile/manifests/1\": dial tcp: lookup registry-1.docker.io ... no such host\`); BuildKit's copies drop that line and use dockerd's built-in Dockerfile frontend, which supports \`RUN --mount=type=cache\`.")
notes+=("Every timed command starts after \`sync\`, so no tool pays for writes that earlier steps left dirty. cstore makes a snapshot durable with syncfs(2), which flushes the whole filesystem: the cold build without a snapshot unpacks golang's 468 MB tree and flushes it, which is most of its time and varies with the disk (2.2-10.9 s over this session's runs, with and without the sync).")
notes+=("Wall times include each client's start; BuildKit's include the docker client and the daemon's round trips, not the daemon's start.")
for n in "${notes[@]}"; do echo "- $n"; done
