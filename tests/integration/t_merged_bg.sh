#!/usr/bin/env bash
# A stage's merged tree off the build's critical path (build_stage.c, merged_view.c): COPY and
# WORKDIR resolve their destination through a view of the layers, a RUN's tree is made in a thread
# while the runtime starts and joined after the command. CSTORE_TEST_MERGED_DELAY_MS makes that
# thread late, so a use of the tree before it is complete changes the image or crashes: the image
# is the same with and without the delay (and from the baseline binary when CSTORE_BASELINE names
# one). A build that fails or gets a SIGTERM while the thread runs stops it promptly and frees
# its tree (ASan's leak check fails the build's exit status otherwise).
. "$(dirname "$0")/lib.sh"
need root overlayfs runc jq
bases
must cs load "$BASES/busybox.docker.tar"
export SOURCE_DATE_EPOCH=1700000000

ctx=$T/ctx
mkdir -p "$ctx/src/sub"
printf 'one\n' >"$ctx/src/a.txt"
printf 'two\n' >"$ctx/src/sub/b.txt"
printf 'three\n' >"$ctx/c.txt"
# Destinations through a symlink an earlier layer made (/ln -> /usr), over a whiteout (/gone
# removed by a RUN), into a dir a RUN made again (/op); a USER RUN (joins before the command); in
# the stage FROM it, WORKDIR and COPYs through the view, a RUN, a COPY after it (the made tree,
# caught up), and COPY --from both stages.
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox AS build
WORKDIR /work/deep
RUN ln -s /usr /ln && mkdir -p /gone/x /op && touch /gone/x/f /op/old && echo base > /etc/motd
RUN rm -rf /gone /op && mkdir /op && touch /op/new && echo run >> /etc/motd
USER nobody
RUN id -u > /tmp/uid
USER root

FROM build AS next
WORKDIR /ln/w2
COPY src /ln/share/src/
COPY c.txt /gone/again/
COPY src/a.txt /op/
COPY c.txt .
RUN cat /ln/w2/c.txt /op/a.txt > /both
COPY c.txt /after-run.txt

FROM busybox
COPY --from=next /usr/share/ /share/
COPY --from=next /usr/w2/ /w2/
COPY --from=next /op/ /op/
COPY --from=next /gone/ /gone/
COPY --from=next /both /after-run.txt /tmp/uid /
EOF

build_in() { # ROOT [BIN]: builds $ctx in a fresh root, prints the image id
    local bin=${2:-$CSTORE}
    "$bin" --root "$1" load "$BASES/busybox.docker.tar" >/dev/null &&
        "$bin" --root "$1" build --progress quiet "$ctx" | tail -n1
}
id1=$(cs build --progress quiet -t img "$ctx" | tail -n1)
check "the build gives an image id" grep -Eq '^sha256:[0-9a-f]{64}$' <<<"$id1"
id2=$(CSTORE_TEST_MERGED_DELAY_MS=400 build_in "$T/root2")
check_eq "a late merged tree gives the same image" "$id2" "$id1"
id3=$(CSTORE_TEST_MERGED_DELAY_MS=400 "$CSTORE" --root "$T/root2" build --progress quiet \
    --no-cache "$ctx" | tail -n1)
check_eq "so does --no-cache with a late tree (every step misses)" "$id3" "$id1"
if [ -n "${CSTORE_BASELINE:-}" ] && [ -x "$CSTORE_BASELINE" ]; then
    id4=$(build_in "$T/root4" "$CSTORE_BASELINE")
    check_eq "the baseline binary gives the same image id" "$id4" "$id1"
fi
must cs export img -o "$T/oci" --format oci-dir
unpack "$T/oci:latest" "$T/u"
r=$T/u/rootfs
check_eq "COPY through a symlink an earlier layer made" "$(cat "$r/share/src/sub/b.txt")" two
check_eq "WORKDIR through it, and COPY into it" "$(cat "$r/w2/c.txt")" three
check_eq "COPY into the dir a RUN made again" "$(ls "$r/op" | tr '\n' ' ')" "a.txt new "
check_eq "COPY under a path a RUN deleted" "$(ls -A "$r/gone" | tr '\n' ' ')" "again "
check_eq "the RUN after them saw both" "$(cat "$r/both")" "$(printf 'three\none')"
check_eq "COPY after the RUN" "$(cat "$r/after-run.txt")" three
check_eq "USER nobody's RUN" "$(cat "$r/uid")" 65534

# The layer a RUN makes depends on the merged tree (what overlay copied up and changed): a RUN
# whose upper dir holds copied-up /etc gives the same layer early or late.
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox
RUN mkdir -p /etc/x && echo y > /etc/x/y
RUN cat /etc/x/y > /y
EOF
a=$(build_in "$T/root5")
b=$(CSTORE_TEST_MERGED_DELAY_MS=400 build_in "$T/root6")
check_eq "RUN layers with the tree made early or late" "$b" "$a"

# A failing RUN while the thread still waits: the build fails at once (the stop ends the wait),
# with the RUN's error, and frees what it started.
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox
COPY c.txt /c.txt
RUN exit 3
EOF
t0=$(date +%s%N)
rc=0
CSTORE_TEST_MERGED_DELAY_MS=5000 cs build --progress plain "$ctx" >"$T/f.log" 2>&1 || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check_eq "a failing RUN fails the build (exit 1)" "$rc" 1
check "with the RUN's error" grep -q 'exit status 3' "$T/f.log"
check_cmp "without waiting for the late tree (ms)" "$ms" -lt 4000
check "and no leak or sanitizer report" bash -c "! grep -Eq 'LeakSanitizer|AddressSanitizer|runtime error' '$T/f.log'"
rc=0
cs build --progress plain "$ctx" >"$T/f2.log" 2>&1 || rc=$?
check_eq "a failing RUN after the tree was made fails with exit 1 (tree freed)" "$rc" 1
check "no leak report either" bash -c "! grep -Eq 'LeakSanitizer|AddressSanitizer' '$T/f2.log'"

# SIGTERM while the RUN runs and the thread waits: interrupted promptly, nothing left mounted.
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox
COPY c.txt /c.txt
RUN sleep 30; echo cstoremergedterm
EOF
CSTORE_TEST_MERGED_DELAY_MS=20000 "$CSTORE" --root "$ROOT" build --progress plain "$ctx" >"$T/i.log" 2>&1 &
pid=$!
for _ in $(seq 400); do
    pgrep -f -- "sleep 30; echo cstoremergedterm" >/dev/null && break
    sleep 0.05
done
t0=$(date +%s%N)
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check_cmp "SIGTERM fails the build" "$rc" -ne 0
check_cmp "promptly, without waiting for the late tree (ms)" "$ms" -lt 5000
check "interrupted by the signal" grep -q 'interrupted by signal' "$T/i.log"
check "no leak or sanitizer report" bash -c "! grep -Eq 'LeakSanitizer|AddressSanitizer|runtime error' '$T/i.log'"
check_fails "no process of the RUN left" pgrep -f -- "sleep 30; echo cstoremergedterm"
check_eq "nothing mounted under the root" "$(grep -c " $ROOT/" /proc/self/mountinfo || true)" 0
finish
