#!/usr/bin/env bash
# RUN and `cstore run`: files created, changed and deleted by RUN, USER and WORKDIR, a failing
# RUN, cache mounts reused across builds, heredoc RUN, --network none, exit statuses, and the
# hello-go example built single- and multi-stage; exported images checked with umoci; secret and
# ssh mounts (the secret value found nowhere in the image, the config or the store).
. "$(dirname "$0")/lib.sh"
need root overlayfs runc jq umoci skopeo python3
bases
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"

ctx=$T/ctx
mkdir -p "$ctx"
printf 'from context\n' > "$ctx/input.txt"
cat > "$ctx/Dockerfile" <<'EOF'
FROM busybox
WORKDIR /work
COPY input.txt .
RUN echo created > new.txt && echo changed >> input.txt && rm /bin/vi && mkdir -p /gone/sub && touch /gone/sub/x
RUN rm -rf /gone && pwd > /pwd.txt && id -u > /uid0.txt
USER nobody
RUN id -u > /tmp/uid.txt; echo "user=$(id -un)" > /tmp/user.txt
USER root
RUN <<EOT
echo heredoc > /heredoc.txt
echo second line >> /heredoc.txt
EOT
RUN --network=none cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > /netdevs.txt
ARG LEVEL=3
ENV GREETING=hello
RUN echo "$GREETING $LEVEL" > /env.txt
CMD ["cat", "/work/new.txt"]
EOF
id=$(cs build --progress plain -t runtest "$ctx" 2>"$T/b1.log" | tail -n1)
check "build with RUN succeeds" grep -Eq '^sha256:[0-9a-f]{64}$' <<<"$id"
must cs export runtest -o "$T/rt.oci" --format oci-dir
unpack "$T/rt.oci:latest" "$T/u"
r=$T/u/rootfs
check_eq "RUN created a file in WORKDIR" "$(cat "$r/work/new.txt")" created
check_eq "RUN changed a copied file" "$(cat "$r/work/input.txt")" "$(printf 'from context\nchanged')"
check "RUN deleted a base file (absent in the export)" test ! -e "$r/bin/vi" -a ! -L "$r/bin/vi"
check "RUN deleted a directory made by an earlier RUN" test ! -e "$r/gone"
check_eq "RUN ran in WORKDIR" "$(cat "$r/pwd.txt")" /work
check_eq "RUN as root" "$(cat "$r/uid0.txt")" 0
check_eq "USER nobody honoured" "$(cat "$r/tmp/uid.txt")" 65534
check_eq "heredoc RUN" "$(cat "$r/heredoc.txt")" "$(printf 'heredoc\nsecond line')"
check_eq "RUN --network=none: only lo" "$(cat "$r/netdevs.txt")" lo
check_eq "ENV and ARG reach RUN" "$(cat "$r/env.txt")" "hello 3"
check_eq "cstore run: CMD output" "$(cs run runtest)" created
check_eq "cstore run: command override" "$(cs run runtest cat /work/input.txt | head -n1)" "from context"
rc=0; cs run runtest sh -c 'exit 7' || rc=$?
check_eq "cstore run: exit status propagated" "$rc" 7
check_eq "cstore run: no mount left behind" "$(grep -c " $ROOT" /proc/self/mountinfo || true)" 0
# The rootfs overlay is volatile (kernel 5.10+): its unmount does not flush the whole filesystem
# the store is on; the upper dir's durability is the store's commit and the snapshot's boot id.
kv=$(uname -r | awk -F. '{print $1 * 1000 + $2}')
if [ "$kv" -ge 5010 ]; then
    check_eq "RUN's overlay is mounted volatile" \
        "$(cs run runtest sh -c "grep ' / / ' /proc/self/mountinfo | grep -c 'overlay.*volatile'")" 1
fi

# Rebuild: all cached, same digest.
id2=$(cs build --progress plain -t runtest "$ctx" 2>"$T/b2.log" | tail -n1)
check_eq "rebuild with RUN: same digest" "$id2" "$id"
check_eq "rebuild with RUN: every RUN cached" \
    "$(grep -A1 ' RUN ' "$T/b2.log" | grep -c CACHED)" "$(grep -c ' RUN ' "$T/b2.log")"

# A failing RUN: DOCKERFILE:LINE, the command, its status, one stderr line.
fctx=$T/fail
mkdir -p "$fctx"
printf 'FROM busybox\nRUN echo about to fail; exit 3\n' > "$fctx/Dockerfile"
rc=0
cs build --progress quiet "$fctx" >/dev/null 2>"$T/fail.err" || rc=$?
check "failing RUN: non-zero exit" test "$rc" -ne 0
check "failing RUN: DOCKERFILE:LINE, command and status" \
    grep -q '^cstore: Dockerfile:2: RUN echo about to fail; exit 3: exit status 3' "$T/fail.err"
check "failing RUN: last output line in the message" grep -q "about to fail" "$T/fail.err"
check_eq "failing RUN: no mount or run dir left" \
    "$(grep -c " $ROOT" /proc/self/mountinfo || true)$(ls "$ROOT/tmp" 2>/dev/null | grep -c '^run-' || true)" 00

# Cache mounts persist across builds (and --no-cache reruns the step).
cctx=$T/cache
mkdir -p "$cctx"
printf 'FROM busybox\nRUN --mount=type=cache,target=/cache sh -c "echo x >> /cache/log; wc -l < /cache/log > /count"\n' > "$cctx/Dockerfile"
must cs build --progress quiet -t c1 "$cctx"
must cs build --progress quiet --no-cache -t c2 "$cctx"
check_eq "cache mount: second build saw the first's file" "$(cs run c2 cat /count | tr -d ' ')" 2

# RUN --mount=type=bind,from=STAGE sees that stage's files (read-only), and leaves no trace.
bctx=$T/bindfrom
mkdir -p "$bctx"
printf 'payload\n' > "$bctx/p.txt"
printf 'FROM busybox AS data\nCOPY p.txt /srv/p.txt\nFROM busybox\nRUN --mount=type=bind,from=data,source=/srv,target=/m cat /m/p.txt > /got.txt && ! touch /m/x\n' > "$bctx/Dockerfile"
must cs build --progress quiet -t bindfrom "$bctx"
check_eq "bind mount from a stage" "$(cs run bindfrom cat /got.txt)" payload
check "bind mount target not left in the image" bash -c "! '$CSTORE' --root '$ROOT' run bindfrom test -e /m"

if [ "$CSTORE_TEST_LIGHT" != 1 ]; then
    must cs load "$BASES/golang.docker.tar"
    ex=$CSTORE_SRC/examples/hello-go
    must cs build --progress quiet -t hello:multi -f "$ex/Dockerfile" "$ex"
    must cs build --progress quiet -t hello:scratch -f "$ex/Dockerfile.scratch" "$ex"
    must cs build --progress quiet -t hello:single -f "$ex/Dockerfile.single" "$ex"
    check_eq "hello-go multi-stage prints Hello, World!" "$(cs run hello:multi)" "Hello, World!"
    check_eq "hello-go scratch prints Hello, World!" "$(cs run hello:scratch)" "Hello, World!"
    check_eq "hello-go single-stage prints Hello, World!" "$(cs run hello:single)" "Hello, World!"
    must cs export hello:scratch -o "$T/hs.oci" --format oci-dir
    unpack "$T/hs.oci:scratch" "$T/hs"
    check_eq "scratch image: the binary alone" "$(cd "$T/hs/rootfs" && find . -type f)" ./hello
    check_eq "exported binary runs" "$("$T/hs/rootfs/hello")" "Hello, World!"
fi
# Two identical layers (RUN true twice): the overlay gets each snapshot once.
dctx=$T/duplayers
mkdir -p "$dctx"
printf 'FROM busybox\nRUN true\nRUN true\nRUN echo third > /third\n' > "$dctx/Dockerfile"
check "three RUNs, two of them identical, build" cs build --progress quiet -t duplayers "$dctx"
check_eq "image with two identical layers runs" "$(cs run duplayers cat /third)" third

# Reproducible by default: RUN-written mtimes are clamped to the build's epoch (0 without
# SOURCE_DATE_EPOCH), so two --no-cache builds in two roots give the same image id.
rctx=$T/repro
mkdir -p "$rctx"
printf 'FROM busybox\nRUN echo hi > /f && cp /bin/busybox /b\n' > "$rctx/Dockerfile"
rids=
for n in 1 2; do
    must "$CSTORE" --root "$T/repro-root$n" load "$BASES/busybox.docker.tar"
    rids="$rids $(env -u SOURCE_DATE_EPOCH "$CSTORE" --root "$T/repro-root$n" build --progress quiet \
        --no-cache "$rctx" | tail -n1)"
    sleep 1
done
set -- $rids
check "reproducible RUN: both builds gave an id" grep -Eq '^sha256:[0-9a-f]{64}$' <<<"${2:-}"
check_eq "reproducible RUN: same image id in two roots without SOURCE_DATE_EPOCH" "${1:-}" "${2:-x}"

# SIGKILL of cstore during RUN: the container dies with it, its overlay is unmounted, and the
# next command removes the run dir.
kctx=$T/killed
mkdir -p "$kctx"
printf 'FROM busybox\nRUN sleep 2999\n' > "$kctx/Dockerfile"
"$CSTORE" --root "$ROOT" build --progress quiet --no-cache "$kctx" >/dev/null 2>&1 &
kpid=$!
for _ in $(seq 100); do
    pgrep -fx 'sleep 2999' >/dev/null && break
    sleep 0.1
done
check "killed build: the RUN was running" pgrep -fx 'sleep 2999'
kill -9 "$kpid"
wait "$kpid" 2>/dev/null
left() {
    echo "$(pgrep -fx 'sleep 2999' | wc -l)" \
        "$(runc --root "$ROOT/tmp/runc" list -q 2>/dev/null | wc -l)" \
        "$(grep -c " $ROOT/" /proc/self/mountinfo || true)"
}
for _ in $(seq 50); do
    [ "$(left)" = "0 0 0" ] && break
    sleep 0.2
done
check_eq "killed build: no process, container or mount left within seconds" "$(left)" "0 0 0"
must cs images
check_eq "killed build: the next command removed the run dir" \
    "$(ls "$ROOT/tmp" 2>/dev/null | grep -c '^run-' || true)" 0

# RUN --mount=type=bind without from= binds the context, also when it is given as a relative
# path (BuildKit: the context; not the runtime's bundle dir with config.json and rootfs).
rbctx=$T/relbind
mkdir -p "$rbctx"
printf 'from the context\n' > "$rbctx/somefile"
printf 'FROM busybox\nRUN --mount=type=bind,target=/ctx cat /ctx/somefile > /out && ls /ctx > /ls\n' \
    > "$rbctx/Dockerfile"
check "bind mount of a relative context (build .) builds" \
    bash -c "cd '$rbctx' && '$CSTORE' --root '$ROOT' build --progress quiet -t relbind . >/dev/null"
check_eq "bind mount of a relative context sees the context's file" \
    "$(cs run relbind cat /out)" "from the context"
check_eq "bind mount of a relative context lists the context, not the bundle" \
    "$(cs run relbind cat /ls | tr '\n' ' ')" "Dockerfile somefile "

# RUN --mount=type=tmpfs is writable (BuildKit: tmpfs mounts are read-write unless ro is given),
# and nothing written there, nor the mount point, lands in the image.
tctx=$T/tmpfsmount
mkdir -p "$tctx"
printf 'FROM busybox\nRUN --mount=type=tmpfs,target=/scratch sh -c '"'"'echo x > /scratch/f && cat /scratch/f > /seen'"'"'\n' \
    > "$tctx/Dockerfile"
check "tmpfs mount: a RUN writing into it builds" cs build --progress quiet -t tmpfsm "$tctx"
check_eq "tmpfs mount: the RUN read back what it wrote" "$(cs run tmpfsm cat /seen)" x
check_eq "tmpfs mount: /scratch is empty (or absent) in the image" \
    "$(cs run tmpfsm sh -c 'ls -A /scratch 2>/dev/null | wc -l')" 0
# Hardlinks a RUN made are one inode in its layer, and COPY --from=stage of their directory keeps
# them one inode (BuildKit's copier keeps hardlinks within one COPY).
hlctx=$T/runhardlinks
mkdir -p "$hlctx"
printf 'FROM busybox AS maker\nRUN mkdir -p /dir/sub && echo same > /dir/a && ln /dir/a /dir/sub/b && ln /dir/a /dir/c\nFROM busybox\nCOPY --from=maker /dir /dir\n' \
    > "$hlctx/Dockerfile"
check "COPY --from of RUN-made hardlinks builds" cs build --progress quiet -t runhl "$hlctx"
check_eq "COPY --from of RUN-made hardlinks: one inode in the image" \
    "$(cs run runhl stat -c %i /dir/a /dir/sub/b /dir/c | sort -u | wc -l)" 1
check_eq "COPY --from of RUN-made hardlinks: three links" "$(cs run runhl stat -c %h /dir/a)" 3
rm -rf "$T/runhl.oci"
cs export runhl -o "$T/runhl.oci" --format oci-dir >/dev/null
rhm=$(jq -r '.manifests[0].digest' "$T/runhl.oci/index.json" | sed 's/sha256://')
rhl=$(jq -r '.layers[-1].digest' "$T/runhl.oci/blobs/sha256/$rhm" | sed 's/sha256://')
check_eq "COPY --from of RUN-made hardlinks: two hardlink entries in the COPY layer" \
    "$(tar -tvf "$T/runhl.oci/blobs/sha256/$rhl" | grep -c ' link to dir/a$')" 2

# Heredocs in RUN wherever BuildKit takes them: when the command is not only the heredoc, the
# line and the bodies run as one shell script (redirections, a program reading stdin, several
# heredocs, <<- and quoted delimiters are the shell's).
hctx=$T/heredocs
mkdir -p "$hctx"
printf 'FROM busybox\nENV WHO=world\nRUN cat <<EOF > /file\nhello $WHO\nEOF\nRUN sh <<EOF\necho "from sh" > /sh.txt\nEOF\nRUN <<EOF sh\necho "sh after" > /after.txt\nEOF\nRUN <<A cat > /one && <<B cat > /two\nfirst\nA\nsecond\nB\nRUN cat <<-EOF > /tabs\n\t\tindented\n\tEOF\nRUN cat <<"EOF" > /quoted\nno $WHO\nEOF\n' \
    > "$hctx/Dockerfile"
check "heredocs in RUN: the Dockerfile builds" cs build --progress quiet -t heredocs "$hctx"
check_eq "heredoc RUN: cat <<EOF > /file, expanded by the shell" \
    "$(cs run heredocs cat /file)" "hello world"
check_eq "heredoc RUN: sh <<EOF reads the body on stdin" "$(cs run heredocs cat /sh.txt)" "from sh"
check_eq "heredoc RUN: <<EOF sh" "$(cs run heredocs cat /after.txt)" "sh after"
check_eq "heredoc RUN: two heredocs in one command" \
    "$(cs run heredocs cat /one /two)" "$(printf 'first\nsecond')"
check_eq "heredoc RUN: <<- strips leading tabs" "$(cs run heredocs cat /tabs)" "indented"
check_eq "heredoc RUN: a quoted delimiter expands nothing" \
    "$(cs run heredocs cat /quoted)" 'no $WHO'

# ONBUILD (BuildKit): the triggers of a base image run once, in the stage built FROM it, before
# its own instructions; that stage's config has no OnBuild, so a grandchild runs nothing again.
# A stage's own ONBUILD lines run in a stage built FROM it, and not in one FROM that one.
octx=$T/onbuild
mkdir -p "$octx"
printf 'marker\n' > "$octx/marker.txt"
printf 'FROM busybox\nONBUILD WORKDIR /trig\nONBUILD ENV TRIG=yes\nONBUILD COPY marker.txt /trig/\nONBUILD RUN echo ran >> /trig/count\nONBUILD RUN <<EOF\necho from a heredoc > /trig/hd\nEOF\n' \
    > "$octx/Dockerfile.base"
printf 'FROM obbase\nRUN echo "$TRIG $(pwd)" > /child.txt\n' > "$octx/Dockerfile.child"
printf 'FROM obchild\nRUN wc -l < /trig/count > /n\n' > "$octx/Dockerfile.grand"
check "onbuild: the base builds" cs build --progress quiet -t obbase -f "$octx/Dockerfile.base" "$octx"
check_eq "onbuild: the base's config keeps its five triggers, the heredoc's body in its own" \
    "$(cs inspect obbase | jq -c '.config.config.OnBuild | [length, .[4]]')" \
    '[5,"RUN <<EOF\necho from a heredoc > /trig/hd\nEOF"]'
check "onbuild: the child builds" cs build --progress quiet -t obchild -f "$octx/Dockerfile.child" "$octx"
check_eq "onbuild: the trigger's COPY ran in the child" "$(cs run obchild cat /trig/marker.txt)" marker
check_eq "onbuild: the trigger's RUN ran once" "$(cs run obchild cat /trig/count)" ran
check_eq "onbuild: a trigger with a heredoc ran" "$(cs run obchild cat /trig/hd)" "from a heredoc"
check_eq "onbuild: the trigger's ENV and WORKDIR are seen by the child's RUN" \
    "$(cs run obchild cat /child.txt)" "yes /trig"
check_eq "onbuild: the child's config has the trigger's WorkingDir" \
    "$(cs inspect obchild | jq -r .config.config.WorkingDir)" /trig
check_eq "onbuild: the child's config has no OnBuild" \
    "$(cs inspect obchild | jq -c '.config.config.OnBuild')" null
check "onbuild: the grandchild builds" cs build --progress quiet -t obgrand -f "$octx/Dockerfile.grand" "$octx"
check_eq "onbuild: the grandchild did not run the triggers again" "$(cs run obgrand cat /n)" 1
printf 'FROM busybox AS a\nONBUILD RUN echo staged >> /staged\nFROM a AS b\nRUN cat /staged > /seen\nFROM b\nRUN wc -l < /staged > /n\n' \
    > "$octx/Dockerfile.stages"
check "onbuild in stages: builds" cs build --progress quiet -t obstages -f "$octx/Dockerfile.stages" "$octx"
check_eq "onbuild in stages: the stage FROM a ran a's trigger" "$(cs run obstages cat /seen)" staged
check_eq "onbuild in stages: the stage FROM b did not run it again" "$(cs run obstages cat /n)" 1

# docker build's --add-host, --ulimit, --shm-size and --platform (BuildKit): the extra hosts are
# lines of the RUN's /etc/hosts (a generated file bound read-only, never in the layer), the ulimits
# the RUN's rlimits, the shm size that of its /dev/shm (binary units, as docker's); each is in the
# RUN's cache key. Only the host's platform builds.
fctx=$T/runflags
mkdir -p "$fctx"
printf 'FROM busybox\nRUN cat /etc/hosts > /h\nRUN ulimit -n > /n && ulimit -Hn >> /n\nRUN df -k /dev/shm | awk '"'"'NR==2 {print $2}'"'"' > /shm\n' \
    > "$fctx/Dockerfile"
check "build flags: --add-host, --ulimit, --shm-size, --platform of the host" \
    cs build --progress quiet -t runflags --add-host db.internal:10.1.2.3 --add-host v6host=[fe80::7] \
    --ulimit nofile=1024:2048 --ulimit core=0 --shm-size 128m --platform linux/amd64 "$fctx"
check "--add-host: the RUN's /etc/hosts has the entry" grep -qP '^10\.1\.2\.3\tdb\.internal$' \
    <(cs run runflags cat /h)
check "--add-host: an IPv6 entry, brackets dropped" grep -qP '^fe80::7\tv6host$' <(cs run runflags cat /h)
check_eq "--ulimit nofile=1024:2048: soft and hard limits of the RUN" \
    "$(cs run runflags cat /n)" "$(printf '1024\n2048')"
check_eq "--shm-size 128m: /dev/shm is 128 MiB" "$(cs run runflags cat /shm)" 131072
rm -rf "$T/runflags.oci"
cs export runflags -o "$T/runflags.oci" --format oci-dir >/dev/null
fman=$T/runflags.oci/blobs/sha256/$(jq -r '.manifests[0].digest' "$T/runflags.oci/index.json" | sed 's/sha256://')
for l in $(jq -r '.layers[1:][] | .digest' "$fman" | sed 's/sha256://'); do
    tar -tf "$T/runflags.oci/blobs/sha256/$l"
done > "$T/runflags.layers"
check_eq "--add-host: no etc/hosts in the RUN layers" "$(grep -c 'etc/hosts' "$T/runflags.layers")" 0
check_eq "build flags: the layers' files are only what the RUNs wrote" \
    "$(grep -v '/$' "$T/runflags.layers" | sort | tr '\n' ' ')" "h n shm "
printf 'FROM busybox\nRUN ulimit -n > /n\n' > "$fctx/Dockerfile.u"
cs build --progress plain -t ulim1 --ulimit nofile=1024:2048 -f "$fctx/Dockerfile.u" "$fctx" \
    >/dev/null 2>"$T/u1.log"
cs build --progress plain -t ulim2 --ulimit nofile=1500:2048 -f "$fctx/Dockerfile.u" "$fctx" \
    >/dev/null 2>"$T/u2.log"
check_eq "--ulimit: another limit is another cache key" "$(cs run ulim2 cat /n)" 1500
check "--platform local, linux/amd64/v1 and amd64 are the host's" \
    cs build --progress quiet --platform local --platform linux/amd64/v1 -t plat1 -f "$fctx/Dockerfile.u" "$fctx"
check "--platform amd64" cs build --progress quiet --platform amd64 -f "$fctx/Dockerfile.u" "$fctx"
rc=0
cs build --progress quiet --platform linux/arm64 -f "$fctx/Dockerfile.u" "$fctx" >"$T/plat.out" 2>"$T/plat.err" || rc=$?
check_cmp "--platform linux/arm64 fails" "$rc" -ne 0
check_eq "--platform linux/arm64: one clear line" "$(cat "$T/plat.err")" \
    "cstore: platform 'linux/arm64' is not supported: cstore builds for linux/amd64 only"
check_fails "--ulimit with an unknown name is refused" \
    cs build --progress quiet --ulimit files=10 -f "$fctx/Dockerfile.u" "$fctx"
check_fails "--add-host without an IP is refused" \
    cs build --progress quiet --add-host db -f "$fctx/Dockerfile.u" "$fctx"
check_fails "--shm-size that is no size is refused" \
    cs build --progress quiet --shm-size lots -f "$fctx/Dockerfile.u" "$fctx"
# RUN --mount=type=secret (BuildKit): the value is a read-only file at /run/secrets/ID (or the
# target) for that RUN only; it is in no layer, not in the config or history, not in the store's
# records or files; a new value does not invalidate the cache; required=true fails without it;
# an optional one not given is left out.
sctx=$T/secrets
mkdir -p "$sctx"
sec1=SeCrEt1$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
sec2=SeCrEt2$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s' "$sec1" > "$T/tok.txt"
cat > "$sctx/Dockerfile" <<'EOF'
FROM busybox
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && wc -c < /run/secrets/tok > /len && stat -c '%a %u %g' /run/secrets/tok > /perm && (echo x 2>/dev/null > /run/secrets/tok && echo writable || echo read-only) > /ro
RUN --mount=type=secret,id=envtok,target=/etc/envtok,uid=65534,gid=65534,mode=0440 wc -c < /etc/envtok > /envlen && stat -c '%a %u %g' /etc/envtok > /envperm
RUN --mount=type=secret,id=absent if test -e /run/secrets/absent; then echo mounted; else echo omitted; fi > /absent
EOF
rc=0
SECRET_ENV=$sec1 cs build --progress plain -t sectest --secret "id=tok,src=$T/tok.txt" \
    --secret id=envtok,env=SECRET_ENV "$sctx" > "$T/sec1.out" 2> "$T/sec1.log" || rc=$?
check_eq "secret build succeeds" "$rc" 0 || tail -n 20 "$T/sec1.log"
secid=$(tail -n1 "$T/sec1.out")
check_eq "secret: the RUN read the whole value" "$(cs run sectest cat /len)" "${#sec1}"
check_eq "secret: mode 0400, owned by root" "$(cs run sectest cat /perm)" "400 0 0"
check_eq "secret: mounted read-only" "$(cs run sectest cat /ro)" read-only
check_eq "secret env=: the value of the variable" "$(cs run sectest cat /envlen)" "${#sec1}"
check_eq "secret: target, mode, uid and gid as given" "$(cs run sectest cat /envperm)" \
    "440 65534 65534"
check_eq "secret not given and not required: no mount" "$(cs run sectest cat /absent)" omitted
check "secret: no file left at the targets in the image" \
    cs run sectest sh -c 'test ! -e /run/secrets && test ! -e /etc/envtok'
rm -rf "$T/sec.oci"
must cs export sectest -o "$T/sec.oci" --format oci-dir --compression none
check_eq "secret: in no blob (uncompressed layers, config, manifest) of the export" \
    "$(grep -rlF -e "$sec1" "$T/sec.oci" | wc -l)" 0
check_eq "secret: not in inspect (config and history)" \
    "$(cs inspect sectest | grep -cF -e "$sec1" || true)" 0
check_eq "secret: not in the store's records (data.mdb)" \
    "$(grep -cF -e "$sec1" "$ROOT/data.mdb" || true)" 0
check_eq "secret: in no file of the store (snapshots, chunks, run dirs)" \
    "$(grep -rlF -e "$sec1" "$ROOT" | wc -l)" 0
check_eq "secret: the build log does not show it" "$(grep -cF -e "$sec1" "$T/sec1.log" || true)" 0
check_eq "secret: no run dir left" "$(find "$ROOT/tmp" -maxdepth 1 -name 'run-*' | wc -l)" 0
printf '%s' "$sec2" > "$T/tok.txt"
secid2=$(SECRET_ENV=$sec2 cs build --progress plain -t sectest --secret "id=tok,src=$T/tok.txt" \
    --secret id=envtok,env=SECRET_ENV "$sctx" 2> "$T/sec2.log" | tail -n1)
check_eq "secret: a new value rebuilds to the same image" "$secid2" "$secid"
check_eq "secret: a new value leaves every RUN cached" \
    "$(grep -A1 ' RUN ' "$T/sec2.log" | grep -c CACHED)" "$(grep -c ' RUN ' "$T/sec2.log")"
printf 'FROM busybox\nRUN --mount=type=secret,id=needed,required=true echo never\n' \
    > "$sctx/Dockerfile.required"
rc=0
out=$(cs build --progress plain -f "$sctx/Dockerfile.required" "$sctx" 2>&1) || rc=$?
check_cmp "secret required=true, not given: the build fails" "$rc" -ne 0
check "secret required=true, not given: the error names it" \
    grep -q "Dockerfile.required:2: secret 'needed' not found" <<<"$out"
check_fails "--secret with a missing file fails at once" \
    cs build --secret "id=tok,src=$T/no-such-file" "$sctx"

# RUN --mount=type=ssh: the --ssh socket at /run/buildkit/ssh_agent.N (or the target), with
# SSH_AUTH_SOCK set to the first one; nothing of it left in the image.
sock=$T/agent.sock
python3 -c 'import socket,sys,time
s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4); time.sleep(600)' "$sock" &
agent=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
printf 'FROM busybox\nRUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" > /sock\nRUN --mount=type=ssh,id=other,target=/agent.sock test -S /agent.sock && echo "$SSH_AUTH_SOCK" > /other\nRUN --mount=type=ssh,id=none echo "[$SSH_AUTH_SOCK]" > /none\n' \
    > "$sctx/Dockerfile.ssh"
check "ssh: builds with --ssh default and --ssh ID=SOCKET" env SSH_AUTH_SOCK="$sock" \
    "$CSTORE" --root "$ROOT" build --progress quiet -t sshtest --ssh default \
    --ssh "other=$sock" -f "$sctx/Dockerfile.ssh" "$sctx"
check_eq "ssh: SSH_AUTH_SOCK is the agent socket at /run/buildkit/ssh_agent.0" \
    "$(cs run sshtest cat /sock)" /run/buildkit/ssh_agent.0
check_eq "ssh: the socket of an id at its target" "$(cs run sshtest cat /other)" /agent.sock
check_eq "ssh: an id not given and not required: no socket, no SSH_AUTH_SOCK" \
    "$(cs run sshtest cat /none)" "[]"
check "ssh: nothing of the mounts left in the image" \
    cs run sshtest sh -c 'test ! -e /run/buildkit && test ! -e /agent.sock'
printf 'FROM busybox\nRUN --mount=type=ssh,required=true true\n' > "$sctx/Dockerfile.sshreq"
out=$(cs build --progress plain -f "$sctx/Dockerfile.sshreq" "$sctx" 2>&1)
check "ssh required=true, not given: fails naming the id" \
    grep -q "ssh agent 'default' not found" <<<"$out"
kill "$agent"
wait "$agent" 2>/dev/null

check "fsck clean" cs fsck

# A relative --root: RUN's mounts and bundle are made from the store's absolute path.
mkdir -p "$T/rel/ctx"
printf 'FROM busybox\nRUN echo rel > /rel.txt\n' >"$T/rel/ctx/Dockerfile"
(cd "$T/rel" && "$CSTORE" --root store load "$BASES/busybox.docker.tar" >/dev/null)
check "a relative --root builds a RUN step" \
    bash -c 'cd "$1" && "$2" --root store build --progress quiet -t rel ctx' _ "$T/rel" "$CSTORE"
finish
