#!/usr/bin/env bash
# bench_runstart.sh - issue 11 item 5: what a one-line change of examples/hello-go costs beyond
# `go build` itself (RUN start-up: lower dirs, bundle, overlay mount, runc, upper-dir ingest,
# the final stage and the image), for a baseline cstore and this tree's, in the same run.
#
#   BASELINE=/path/to/main/cstore [BUILDKIT=1] bash bench/bench_runstart.sh [RUNS]
#
# RUNS (default 5) one-line changes per binary and snapshotter, interleaved (baseline, new,
# baseline, ...) so that the load of a shared machine falls on both; medians. BASELINE defaults
# to /work/main/build/cstore (main's Release build). The project is examples/hello-go with its
# RUN wrapped as `echo GOSTART; go build ...; echo GOEND`: the two lines' event times (ms, from
# `--progress plain`) give go build's own time inside the container; overhead = whole build's
# wall time - go build, split into head (start to the GOSTART line's arrival) and tail (the GOEND
# line's arrival to exit), timed with bash's EPOCHREALTIME (no process inside an interval).
# Snapshotters: auto (the second build on golang unpacks it: every build measured here uses the
# unpacked hot tree) and fuse (served; a fresh server per build).
# Needs root, runc, /dev/fuse for the fuse rows, a Release build in build/ and the bases of
# tests/mkbase.sh. Prints a Markdown section (bench/RESULTS-fuse.md keeps the ones recorded).
. "$(dirname "$0")/lib.sh"
runs=${1:-5}
baseline=${BASELINE:-/work/main/build/cstore}
[ -x "$baseline" ] || { echo "bench: BASELINE=$baseline is not executable" >&2; exit 1; }
bench_init runstart
bench_bases
log() { echo "bench: $*" >&2; }
load_start=$(cut -d" " -f1-3 /proc/loadavg)
# each binary is copied so that a rebuild of the tree during the run changes nothing
cp "$baseline" "$work/cs-base"
cp "$cstore" "$work/cs-new"

proj=$work/proj
cp -r "$src/examples/hello-go" "$proj"
sed -i 's|^    CGO_ENABLED=0 go build -o /out/hello .$|    echo GOSTART; CGO_ENABLED=0 go build -o /out/hello .; echo GOEND|' "$proj/Dockerfile"
grep -q GOSTART "$proj/Dockerfile" || { echo "bench: could not wrap the RUN of hello-go" >&2; exit 1; }

# marked CMD...: one build with plain progress; prints "total_s go_s head_s tail_s": head from the
# start to the GOSTART line's arrival (process start, COPY, RUN start-up), tail from the GOEND
# line's arrival to the exit (runc's exit, teardown, ingest, final stage, image, exit). cstore and
# BuildKit print the same "#N SECONDS LINE" for a step's output.
marked() {
    local t0 t1 marks
    t0=$EPOCHREALTIME
    marks=$("$@" 2>&1 | while IFS= read -r l; do
        printf '%s\n' "$l" >>"$work/last.log"
        case $l in *[0-9]" GOSTART" | *[0-9]" GOEND") printf '%s ' "$EPOCHREALTIME" ;; esac
    done; exit "${PIPESTATUS[0]}") || { tail -20 "$work/last.log" >&2; return 1; }
    t1=$EPOCHREALTIME
    awk -v t0="$t0" -v t1="$t1" -v m="$marks" '$3 == "GOSTART" {s = $2} $3 == "GOEND" {e = $2}
        END {if (s == "" || e == "" || split(m, a, " ") != 2) exit 1
             printf "%.4f %.4f %.4f %.4f\n", t1 - t0, e - s, a[1] - t0, t1 - a[2]}' "$work/last.log"
}
# build BIN ROOT SNAPSHOTTER: one cstore build
build() {
    marked "$work/cs-$1" --root "$2" build --progress plain --network none --snapshotter "$3" \
        -t hello "$proj"
}
change() { sed -i "s/fmt.Println(.*)/fmt.Println(\"change $RANDOM $1\")/" "$proj/app.go"; }

declare -A tot gob ovh hd tl
for snap in auto fuse; do
    for b in base new; do
        r=$work/root-$b-$snap
        "$work/cs-$b" --root "$r" load "$bases/golang.docker.tar" >/dev/null
        "$work/cs-$b" --root "$r" load "$bases/busybox.docker.tar" >/dev/null
        for i in 1 2 3; do # first (served), second (auto: unpacks golang), one to warm up
            change "warm $i"
            : >"$work/last.log"
            build "$b" "$r" "$snap" >/dev/null
        done
    done
    declare -A T=() G=() O=() H=() L=()
    for i in $(seq "$runs"); do
        for b in base new; do
            log "$snap: one-line change $i/$runs ($b)"
            change "$i"
            sync
            : >"$work/last.log"
            out=$(build "$b" "$work/root-$b-$snap" "$snap")
            read -r t g h l <<<"$out"
            H[$b]+="$h "
            L[$b]+="$l "
            T[$b]+="$t "
            G[$b]+="$g "
            O[$b]+="$(echo "$t - $g" | bc -l) "
        done
    done
    for b in base new; do
        # shellcheck disable=SC2086
        tot[$b$snap]=$(printf '%s\n' ${T[$b]} | median)
        # shellcheck disable=SC2086
        gob[$b$snap]=$(printf '%s\n' ${G[$b]} | median)
        # shellcheck disable=SC2086
        ovh[$b$snap]=$(printf '%s\n' ${O[$b]} | median)
        # shellcheck disable=SC2086
        hd[$b$snap]=$(printf '%s\n' ${H[$b]} | median)
        # shellcheck disable=SC2086
        tl[$b$snap]=$(printf '%s\n' ${L[$b]} | median)
    done
    rm -rf "$work/root-base-$snap" "$work/root-new-$snap"
done

ms() { printf '%.0f ms' "$(echo "$1 * 1000" | bc -l)"; }
ms_() { ms "$(cat)"; }

# BUILDKIT=1: the same one-line changes through Debian's dockerd (BuildKit, overlay2, runc), its
# project without the `# syntax=` line (offline: dockerd's own Dockerfile frontend)
bk_row=""
if [ "${BUILDKIT:-0}" = 1 ]; then
    bench_dockerd_start || exit 1
    bkproj=$work/bkproj
    cp -r "$proj" "$bkproj"
    sed -i '/^# syntax=/d' "$bkproj/Dockerfile"
    dk load -q -i "$bases/golang.docker.tar" >/dev/null
    dk load -q -i "$bases/busybox.docker.tar" >/dev/null
    bkbuild() {
        DOCKER_BUILDKIT=1 marked "$docker_bin" -H "unix://$work/docker.sock" build --progress plain \
            --network none -t hello "$bkproj"
    }
    declare -a BT=() BG=() BO=()
    for i in $(seq $((runs + 3))); do
        log "BuildKit: one-line change $i/$((runs + 3)) (3 to warm up)"
        sed -i "s/fmt.Println(.*)/fmt.Println(\"change $RANDOM bk $i\")/" "$bkproj/app.go"
        sync
        : >"$work/last.log"
        out=$(bkbuild) || exit 1
        [ "$i" -le 3 ] && continue
        read -r t g _ _ <<<"$out"
        BT+=("$t") BG+=("$g") BO+=("$(echo "$t - $g" | bc -l)")
    done
    bk_ver=$(dk version -f '{{.Server.Version}}' 2>/dev/null || echo '?')
    bench_dockerd_stop
    bk_row="| BuildKit (docker.io $bk_ver) | $(printf '%s\n' "${BT[@]}" | median | ms_) | $(printf '%s\n' "${BG[@]}" | median | ms_) | $(printf '%s\n' "${BO[@]}" | median | ms_) |"
fi

# runc alone: `runc run` of busybox's `true` in a bundle from `runc spec` (no overlay, no cstore),
# the floor under any RUN through runc on this machine
rb=$work/runc-bundle
mkdir -p "$rb/rootfs/bin"
cp "$(command -v busybox)" "$rb/rootfs/bin/busybox"
(cd "$rb" && runc spec)
python3 - "$rb/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/busybox", "true"]
json.dump(c, open(sys.argv[1], "w"))
PY
: >"$work/runc.ms"
for i in $(seq $((runs * 4))); do
    t0=$EPOCHREALTIME
    runc --root "$work/runc-state" run --bundle "$rb" "floor$i" >/dev/null
    t1=$EPOCHREALTIME
    echo "($t1 - $t0) * 1000" | bc -l >>"$work/runc.ms"
done
runc_ms=$(median <"$work/runc.ms")

ratio() { printf '%.2fx' "$(echo "$2 / $1" | bc -l)"; }
row() {
    local s=$1
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$s" \
        "$(ms "${tot[base$s]}")" "$(ms "${gob[base$s]}")" "$(ms "${ovh[base$s]}")" \
        "$(ms "${tot[new$s]}")" "$(ms "${gob[new$s]}")" "$(ms "${ovh[new$s]}")" \
        "$(ratio "${ovh[base$s]}" "${ovh[new$s]}")"
}
row2() {
    local s=$1
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$s" \
        "$(ms "${hd[base$s]}")" "$(ms "${tl[base$s]}")" "$(ms "${hd[new$s]}")" "$(ms "${tl[new$s]}")" \
        "$(ratio "${hd[base$s]}" "${hd[new$s]}")" "$(ratio "${tl[base$s]}" "${tl[new$s]}")"
}
cat <<EOF2
## One-line change: RUN start-up beyond go build ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r))

\`BASELINE=$baseline bash bench/bench_runstart.sh $runs\`: medians of $runs, baseline and new
interleaved. Load average at start: $load_start (end: $(cut -d" " -f1-3 /proc/loadavg)).
baseline: $baseline; new: $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo "?").

| snapshotter | base: build | base: go build | base: overhead | new: build | new: go build | new: overhead | overhead new/base |
|---|---|---|---|---|---|---|---|
$(row auto)
$(row fuse)

Where the overhead lies: head = start to the GOSTART line (process start, COPY, RUN start-up
up to the command), tail = GOEND line to exit (runc's exit, teardown, ingest, final stage,
image). Medians of the same runs.

| snapshotter | base: head | base: tail | new: head | new: tail | head new/base | tail new/base |
|---|---|---|---|---|---|---|
$(row2 auto)
$(row2 fuse)

The floor and the peer (same run): runc alone is the median of $((runs * 4)) \`runc run\` of busybox's
\`true\` in a bundle from \`runc spec\` (no overlay, no cstore); BuildKit's row (BUILDKIT=1) is the
same one-line changes through Debian's dockerd, overhead = its build - its go build (the same
GOSTART/GOEND lines in its plain progress), medians of $runs after 3 to warm up.

| | build | go build | overhead beyond go build |
|---|---|---|---|
| cstore (new, auto) | $(ms "${tot[newauto]}") | $(ms "${gob[newauto]}") | $(ms "${ovh[newauto]}") |
${bk_row:-| BuildKit | (not run: BUILDKIT=1) | | |}
| runc alone | - | - | $(printf '%.0f ms' "$runc_ms") |
EOF2
