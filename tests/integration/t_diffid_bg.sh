#!/usr/bin/env bash
# The diff ids of a build's new layers are worked out in a background thread from its first cache
# miss on (diffid_bg.c; issue 11 item 5): the image is the same as when the commit computes them
# (the same id from two roots and any --jobs, and from the baseline binary when CSTORE_BASELINE
# names one); every diff_id is the sha256 of the layer tar an export writes; a SIGTERM while the
# background may still hash a big layer stops the build promptly and leaves nothing behind.
. "$(dirname "$0")/lib.sh"
need overlayfs runc jq pgrep sha256sum
bases
must cs load "$BASES/busybox.docker.tar"

ctx=$T/ctx
mkdir -p "$ctx/src"
printf 'one\n' >"$ctx/src/a.txt"
head -c 3000000 /dev/urandom >"$ctx/src/blob.bin"
cat >"$ctx/Dockerfile" <<'EOF2'
FROM busybox AS build
COPY src /src
RUN mkdir -p /out && cat /src/a.txt /src/a.txt > /out/twice && cp /src/blob.bin /out/
FROM build AS mid
RUN echo mid > /mid
FROM mid
COPY --from=build /out/ /usr/local/out/
RUN echo final > /final && head -c 1000000 /usr/local/out/blob.bin > /part
COPY src/a.txt /a.txt
CMD ["cat", "/final"]
EOF2

id1=$(cs build --progress quiet -t img "$ctx" | tail -n1)
check "the build gives an image id" grep -Eq '^sha256:[0-9a-f]{64}$' <<<"$id1"
id2=$("$CSTORE" --root "$T/root2" load "$BASES/busybox.docker.tar" >/dev/null &&
    "$CSTORE" --root "$T/root2" build --progress quiet --jobs 1 "$ctx" | tail -n1)
check_eq "another root and --jobs 1 give the same image id" "$id2" "$id1"
if [ -n "${CSTORE_BASELINE:-}" ] && [ -x "$CSTORE_BASELINE" ]; then
    id3=$("$CSTORE_BASELINE" --root "$T/root3" load "$BASES/busybox.docker.tar" >/dev/null &&
        "$CSTORE_BASELINE" --root "$T/root3" build --progress quiet "$ctx" | tail -n1)
    check_eq "the baseline binary gives the same image id" "$id3" "$id1"
fi

# Every diff_id is the sha256 of the exported uncompressed layer: computed apart from the build.
must cs export img -o "$T/oci" --format oci-dir --compression none
man=$(jq -r '.manifests[0].digest' "$T/oci/index.json" | sed 's/:/\//')
cfg=$(jq -r '.config.digest' "$T/oci/blobs/$man" | sed 's/:/\//')
want=$(jq -r '.rootfs.diff_ids[]' "$T/oci/blobs/$cfg")
got=$(jq -r '.layers[].digest' "$T/oci/blobs/$man" | while read -r d; do
    echo "sha256:$(sha256sum "$T/oci/blobs/${d/://}" | cut -d' ' -f1)"
done)
check_eq "every diff_id is the sha256 of its exported layer tar" "$got" "$want"
check_cmp "the image has the base's layer and six of its own" "$(wc -l <<<"$want")" -eq 7
check_eq "the image runs" "$(cs run img)" final

# A rebuild after a change: the commit takes the RUN's and COPYs' diff ids from the background.
printf 'two\n' >"$ctx/src/a.txt"
id4=$(cs build --progress quiet -t img "$ctx" | tail -n1)
id5=$("$CSTORE" --root "$T/root2" build --progress quiet "$ctx" | tail -n1)
check "a changed context gives a new image id" test "$id4" != "$id1"
check_eq "the changed build's id is the same from both roots" "$id5" "$id4"
check "fsck passes after the builds" cs fsck

# SIGTERM while the last RUN sleeps, the big layer before it perhaps still being hashed.
mounts_under() { awk -v r="$ROOT/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo; }
cat >"$ctx/Dockerfile.term" <<'EOF2'
FROM busybox
RUN head -c 100000000 /dev/urandom > /big
RUN sleep 30; echo cstoredbgterm
EOF2
"$CSTORE" --root "$ROOT" build --progress plain -f "$ctx/Dockerfile.term" "$ctx" >"$T/term.log" 2>&1 &
bpid=$!
for _ in $(seq 600); do
    pgrep -f -- "sleep 30; echo cstoredbgterm" >/dev/null && break
    sleep 0.05
done
t0=$(date +%s%N)
kill -TERM "$bpid"
wait "$bpid"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check_cmp "SIGTERM: the build fails" "$rc" -ne 0
check "SIGTERM: the build says it was interrupted" grep -q "interrupted by signal" "$T/term.log"
check_cmp "SIGTERM: the build ends within 5 s" "$ms" -lt 5000
check_fails "SIGTERM: no process of the RUN left" pgrep -f -- "sleep 30; echo cstoredbgterm"
check_eq "SIGTERM: nothing mounted under the root" "$(mounts_under)" ""
check_eq "SIGTERM: no run dir left" "$(ls "$ROOT/tmp" 2>/dev/null | grep '^run-' || true)" ""
check "SIGTERM: fsck passes" cs fsck
check_eq "SIGTERM: the image built before still runs" "$(cs run img)" final
finish
