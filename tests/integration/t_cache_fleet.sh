#!/usr/bin/env bash
# Eight machines on one registry (issue 9): eight store roots build a busybox project IN PARALLEL,
# each with a different one-line change in its copy of the context, each with --cache-from and
# --cache-to (mode=max) the same registry repository and tag. Then a ninth, EMPTY root imports the
# cache and builds each of the eight variants: every step CACHED and each machine's image id, so
# no concurrent export lost another's entries. Bytes moved per machine (uploaded: the blobs whose
# upload it completed and its manifest PUTs; downloaded: its GET bodies) come from the registry's
# access log, each machine's requests told apart by source address (fleet_lib.sh).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
. "$(dirname "$0")/cache_lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
need root overlayfs runc jq python3 curl
bases
registry_start plain
N=8
fleet_relays $((N + 1))
ref() { echo "$(fleet_host "$1")/fleet/app:buildcache"; }

# The project: a few context files; RUN steps that hash, tar and gzip the context with busybox;
# a final stage that copies their results. notes.txt's line 3 is the machine's one-line change.
ctx=$T/ctx
mkdir -p "$ctx/src" "$ctx/data"
for i in 1 2 3 4 5; do printf 'note %d\n' "$i" >>"$ctx/notes.txt"; done
printf 'int main(void) { return 0; }\n' >"$ctx/src/main.c"
head -c 300000 /dev/urandom >"$ctx/data/blob.bin"
seq 1 20000 >"$ctx/data/numbers.txt"
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox AS work
WORKDIR /src
COPY . .
RUN find . -type f | sort | xargs sha256sum >/sums.txt && tar -cf /ctx.tar . && gzip -9 /ctx.tar
RUN mkdir /check && cd /check && zcat /ctx.tar.gz | tar -x && sha256sum -c /sums.txt >/check.txt
FROM busybox
COPY --from=work /sums.txt /check.txt /ctx.tar.gz /out/
RUN wc -l /out/sums.txt /out/check.txt >/out/count.txt
EOF
for ((k = 1; k <= N; k++)); do
    cp -r "$ctx" "$T/ctx$k"
    sed -i "3s/.*/machine $k was here/" "$T/ctx$k/notes.txt"
    ROOT=$T/m$k must cs load "$BASES/busybox.docker.tar"
done

mark=$(fleet_mark)
pids=()
for ((k = 1; k <= N; k++)); do
    (
        ROOT=$T/m$k
        build_plain -t app --cache-from "type=registry,ref=$(ref "$k")" \
            --cache-to "type=registry,ref=$(ref "$k"),mode=max" "$T/ctx$k" >"$T/out$k" 2>&1
    ) &
    pids+=($!)
done
for ((k = 1; k <= N; k++)); do
    wait "${pids[k - 1]}"
    check_eq "machine $k builds and pushes its cache while seven others do (exit status)" "$?" 0
    check "machine $k's export reached the registry" grep -q '^cache: pushed' "$T/out$k"
    id[k]=$(tail -n 1 "$T/out$k")
done
check_eq "the eight variants are eight different images" \
    "$(printf '%s\n' "${id[@]}" | sort -u | grep -c '^sha256:')" "$N"

# The ninth machine: an empty root, --cache-from only.
ROOT=$T/m9
m9=$(fleet_mark)
for ((k = 1; k <= N; k++)); do
    out=$(build_plain -t "v$k" --cache-from "type=registry,ref=$(ref 9)" "$T/ctx$k")
    check_eq "the ninth machine builds variant $k to machine $k's image id" \
        "$(tail -n 1 <<<"$out")" "${id[k]}"
    check_eq "the ninth machine has every step of variant $k CACHED" \
        "$(cached_steps "$out")" "$(layer_steps "$out")"
done
down9=$(fleet_down 9 "$m9") # the eight builds' bytes (before the run below fetches chunks)
check_eq "the ninth machine runs variant 5's result: machine 5's notes.txt hashed" \
    "$(cs run v5 grep notes.txt /out/sums.txt | cut -d' ' -f1)" "$(sha256sum <"$T/ctx5/notes.txt" | cut -d' ' -f1)"
check "the ninth machine is fsck-clean" cs fsck

# Bytes moved, from the registry's access log (manifest PUTs at their mean stored size).
up_all=0 down_all=0
echo "bytes moved through the registry (machine: uploaded, downloaded, manifest PUTs; relay wire up/down)"
for ((k = 1; k <= N + 1; k++)); do
    up=$(fleet_up "$k" "$mark") down=$(fleet_down "$k" "$mark")
    up_all=$((up_all + up)) down_all=$((down_all + down))
    printf '  machine %d: %d up, %d down, %d manifest PUTs; wire %s\n' "$k" "$up" "$down" \
        "$(fleet_manifest_puts "$k" "$mark")" "$(fleet_wire "$k")"
done
echo "  total: $up_all up, $down_all down (the ninth machine's eight builds: $down9 down)"
for ((k = 1; k <= N; k++)); do
    check "machine $k's manifest PUT is in the access log under its own address" \
        test "$(fleet_manifest_puts "$k" "$mark")" -ge 1
done
check_cmp "the registry received the busybox base's chunks at least once (total up > 700 kB)" \
    "$up_all" -gt 700000
check_cmp "the ninth machine's all-cached builds downloaded no pack (< 1 MB: manifest, index)" \
    "$down9" -lt 1000000

finish
