#!/usr/bin/env bash
# docker build (BuildKit) conformance, the last gaps of issue 10: named contexts matched by the
# FROM name as BuildKit keys them, TARGETVARIANT, --ulimit -1, --add-host NAME:host-gateway,
# shebang heredocs run as script files, ONBUILD triggers that name another stage, RUN layers
# without the etc/ the runtime's mount points left, -o type=docker with every -t name, the
# manifest digest in --metadata-file, and `cstore run` with docker run's RUN-like flags.
# BuildKit is not running here: what it produces is written beside each check, from its source
# (moby/buildkit frontend/dockerui, dockerfile2llb, executor) and buildx's.
. "$(dirname "$0")/lib.sh"
need root overlayfs runc jq python3
bases
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"

# layer_files IMAGE N: the paths in layer N (0-based; -1 the last) of IMAGE, one a line.
layer_files() {
    local d=$T/lf.oci mf l
    rm -rf "$d"
    cs export -o "$d" --format oci-dir "$1" || return
    mf=$(jq -r '.manifests[0].digest' "$d/index.json" | sed 's/sha256://')
    l=$(jq -r ".layers[$2].digest" "$d/blobs/sha256/$mf" | sed 's/sha256://')
    tar -tzf "$d/blobs/sha256/$l" | sort
}
# run_out LOG: what the RUN steps printed (BuildKit's "#N 0.123 text" lines), text only.
run_out() { sed -nE 's/^#[0-9]+ [0-9]+\.[0-9]{3} //p' "$1"; }

# ---- named contexts: BuildKit's key is the name normalized, familiar, without :latest ----
# dockerui's NamedContext (and buildx's ParseContextNames on the flag's side) run
# reference.ParseNormalizedNamed -> FamiliarString -> TrimSuffix(":latest"): FROM base,
# FROM base:latest and FROM docker.io/library/base all find --build-context base=...;
# base:v2 is another name; an upper-case name is no reference ("invalid context name").
nc=$T/nc
mkdir -p "$nc"
bbl=$(cs inspect busybox | jq -c .config.rootfs.diff_ids)
for from in base base:latest docker.io/library/base library/base:latest; do
    printf 'FROM %s\n' "$from" >"$nc/Dockerfile"
    id=$(cs build --progress quiet --build-context base=docker-image://busybox "$nc" | tail -n1)
    check_eq "--build-context base=...: FROM $from is the named context" \
        "$(cs inspect "$id" 2>/dev/null | jq -c .config.rootfs.diff_ids)" "$bbl"
done
printf 'FROM base:latest\n' >"$nc/Dockerfile"
id=$(cs build --progress quiet --build-context base:latest=docker-image://busybox "$nc" | tail -n1)
check_eq "--build-context base:latest=...: FROM base:latest finds it" \
    "$(cs inspect "$id" 2>/dev/null | jq -c .config.rootfs.diff_ids)" "$bbl"
printf 'FROM base:v2\n' >"$nc/Dockerfile"
check_fails "--build-context base=...: FROM base:v2 is another name (no such image)" \
    cs build --progress quiet --build-context base=docker-image://busybox "$nc"
id=$(cs build --progress quiet --build-context base:v2=docker-image://busybox "$nc" | tail -n1)
check_eq "--build-context base:v2=...: FROM base:v2 finds it" \
    "$(cs inspect "$id" 2>/dev/null | jq -c .config.rootfs.diff_ids)" "$bbl"
bad=$(cs build --progress quiet --build-context Base=docker-image://busybox "$nc" 2>&1)
check_fails "--build-context with an upper-case name fails" \
    cs build --progress quiet --build-context Base=docker-image://busybox "$nc"
check_eq "... with one line naming it" "$(grep -c "invalid context name 'Base'" <<<"$bad")" 1

# ---- TARGETVARIANT, --ulimit -1, --add-host host-gateway ----
# BuildKit's automatic platform ARGs on amd64: TARGETPLATFORM=linux/amd64, TARGETVARIANT empty
# (declared, so ${TARGETVARIANT-unset} is empty, not "unset").
# --ulimit: go-units' ParseUlimit takes -1 as unlimited (RLIM_INFINITY in the runtime spec).
# --add-host NAME:host-gateway: docker maps it to the bridge gateway (buildx: the docker
# driver's moby.host-gateway-ip). A RUN here shares the host's network namespace, where the host
# is reached on its own loopback: 127.0.0.1.
pc=$T/plat
mkdir -p "$pc"
cat >"$pc/Dockerfile" <<'EOF'
FROM busybox
ARG TARGETPLATFORM
ARG TARGETVARIANT
RUN echo "platform=[$TARGETPLATFORM] variant=[${TARGETVARIANT-unset}]"; \
    echo "core=$(ulimit -c) stack=$(ulimit -s)"; grep -E '[[:space:]]gw$' /etc/hosts
EOF
cs build --progress plain --ulimit core=-1 --ulimit stack=8388608:-1 --add-host gw:host-gateway \
    "$pc" >/dev/null 2>"$T/plat.log"
check_eq "TARGETVARIANT is declared and empty, TARGETPLATFORM linux/amd64" \
    "$(run_out "$T/plat.log" | grep '^platform=')" "platform=[linux/amd64] variant=[]"
check_eq "--ulimit core=-1 is unlimited, stack=8388608:-1 a soft 8192 KiB" \
    "$(run_out "$T/plat.log" | grep '^core=')" "core=unlimited stack=8192"
check_eq "--add-host gw:host-gateway is 127.0.0.1 (the host, whose network RUN shares)" \
    "$(run_out "$T/plat.log" | grep 'gw$')" "$(printf '127.0.0.1\tgw')"
bad=$(cs build --progress quiet --ulimit core=-1:5 "$pc" 2>&1)
check_eq "--ulimit core=-1:5 fails as go-units does, one line" \
    "$(grep -c 'soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 5' <<<"$bad")" 1
# nofile cannot be unlimited on Linux (the kernel caps it at fs.nr_open): runc refuses it, as it
# does for docker run/build --ulimit nofile=-1; the build fails with the runtime's one line.
bad=$(cs build --progress quiet --no-cache --ulimit nofile=-1 "$pc" 2>&1)
check_eq "--ulimit nofile=-1: the runtime's refusal, as docker's (one line)" \
    "$(grep -c "^cstore: .*rlimit.*operation not permitted" <<<"$bad")" 1

# ---- shebang heredocs ----
# dockerfile2llb dispatchRun: a RUN whose only heredoc is the whole command and starts with "#!"
# is written to a file (0755) mounted at /dev/pipes/NAME and run as that file, not through the
# shell; the history says "RUN /dev/pipes/NAME". Any other heredoc runs as a shell script.
sc=$T/shebang
mkdir -p "$sc"
cat >"$sc/Dockerfile" <<'DOCKERFILE'
FROM busybox
RUN <<EOF
#!/bin/awk -f
BEGIN { print "awk ran the script" > "/awk.txt" }
EOF
RUN <<-PY
	#!/bin/env python3
	print("not python: only its shebang")
	PY
RUN <<EOF
echo "plain heredoc in $0" > /sh.txt
EOF
DOCKERFILE
# busybox has no python3 (and its env is /bin/env): the second RUN must fail with env's own
# message, which proves the file ran through its shebang line.
if cs build --progress plain -t sb:1 "$sc" >/dev/null 2>"$T/sb.log"; then
    _fail "a shebang heredoc naming a missing interpreter fails"
else
    check "a shebang heredoc naming a missing interpreter fails (env: python3 not found)" \
        grep -q "env: can't execute 'python3'" "$T/sb.log"
fi
sed -i '/<<-PY/,/PY$/d' "$sc/Dockerfile"
cs build --progress quiet -t sb:1 -o "$T/sb.fs" "$sc" >/dev/null 2>"$T/sb.log"
check_eq "RUN <<EOF with #!/bin/awk -f ran awk on the file" "$(cat "$T/sb.fs/awk.txt")" "awk ran the script"
check_eq "... a plain heredoc still runs in the shell" "$(cat "$T/sb.fs/sh.txt")" "plain heredoc in /bin/sh"
check_eq "... history: RUN /dev/pipes/EOF # buildkit" \
    "$(cs inspect sb:1 | jq -r '.config.history[1].created_by')" "RUN /dev/pipes/EOF # buildkit"
check_eq "... /dev/pipes is not in the layer" "$(layer_files sb:1 1)" "awk.txt"

# ---- ONBUILD triggers that name another stage ----
# BuildKit (dockerfile 1.11+) resolves COPY --from in a trigger against the child's Dockerfile:
# the stage `builder` below is built for it, though no instruction of the target names it.
oc=$T/onbuild
mkdir -p "$oc"
cat >"$oc/Dockerfile" <<'EOF'
FROM busybox AS builder
RUN echo built-by-builder > /artifact
FROM busybox AS base
ONBUILD COPY --from=builder /artifact /from-builder
FROM base
RUN cat /from-builder > /seen
EOF
cs build --progress plain -t ob:1 -o "$T/ob.fs" "$oc" >/dev/null 2>"$T/ob.log"
check_eq "ONBUILD COPY --from=builder copies from the child's stage builder" \
    "$(cat "$T/ob.fs/seen" 2>/dev/null)" built-by-builder
check "... the builder stage was built for it" grep -Eq '^#[0-9]+ \[builder 2/2\] RUN' "$T/ob.log"

# ---- RUN layers hold what the command changed, not the runtime's mount points' parents ----
# BuildKit's layer for `RUN touch /x` is x alone: its stub cleaner restores /etc after the
# runtime's /etc/hosts and /etc/resolv.conf mount points go, and its overlay differ drops the
# unchanged dir. Same for a --mount target's parents (/root/.cache here).
lc=$T/layers
mkdir -p "$lc"
cat >"$lc/Dockerfile" <<'EOF'
FROM busybox
RUN touch /x
RUN --mount=type=cache,id=conform-lc,target=/root/.cache/m touch /y
RUN echo 1 > /etc/newfile
EOF
must cs build --progress quiet -t lay:1 "$lc"
check_eq "RUN touch /x: the layer is x alone (no etc/)" "$(layer_files lay:1 1)" "x"
check_eq "RUN --mount target=/root/.cache/m: the layer is y alone (no root/)" \
    "$(layer_files lay:1 2)" "y"
check_eq "RUN writing into /etc keeps etc/ (its parent) in the layer" \
    "$(layer_files lay:1 3 | tr '\n' ' ')" "etc/ etc/newfile "

# ---- -o type=docker with every -t name; the manifest digest in --metadata-file ----
# BuildKit's docker exporter writes every name of the build (buildx passes all -t) into the
# archive's RepoTags; buildx's metadata has containerimage.digest = the manifest digest (the OCI
# manifest of the exported image, gzip layers) and containerimage.config.digest = the config's.
oc2=$T/out
mkdir -p "$oc2"
printf 'FROM busybox\nRUN echo out > /o.txt\n' >"$oc2/Dockerfile"
oid=$(cs build --progress quiet -t out:1 -t out:2 -t quay.io/x/out:3 \
    -o "type=docker,dest=$T/o.docker.tar" --metadata-file "$T/meta.json" "$oc2" | tail -n1)
check_eq "-o type=docker: RepoTags holds every -t name" \
    "$(tar -xOf "$T/o.docker.tar" manifest.json | jq -c '.[0].RepoTags')" \
    '["out:1","out:2","quay.io/x/out:3"]'
check_eq "-o type=docker: repositories names each repository and tag" \
    "$(tar -xOf "$T/o.docker.tar" repositories | jq -c 'with_entries(.value |= keys)')" \
    '{"out":["1","2"],"quay.io/x/out":["3"]}'
check "-o type=docker: skopeo reads it" skopeo inspect --raw "docker-archive:$T/o.docker.tar"
cs build --progress quiet -t out:1 -o "type=oci,dest=$T/o.oci.tar" "$oc2" >/dev/null
check_eq "--metadata-file: containerimage.digest is the manifest digest -o type=oci writes" \
    "$(jq -r '."containerimage.digest"' "$T/meta.json")" \
    "$(tar -xOf "$T/o.oci.tar" index.json | jq -r '.manifests[0].digest')"
check_eq "--metadata-file: containerimage.config.digest is the image id" \
    "$(jq -r '."containerimage.config.digest"' "$T/meta.json")" "$oid"
check "the store is sound after it" cs fsck

# ---- cstore run: docker run's spellings of the RUN-like flags ----
# docker run -e K=V / -e K (from the environment, dropped when unset), --add-host (host-gateway as
# for build), --shm-size (binary units: 96m is 96 MiB), --ulimit (go-units, -1 unlimited).
export CONFORM_FROM_ENV=from-env
unset CONFORM_UNSET
out=$(cs run -e A=1 -e PATH=/bin -e CONFORM_FROM_ENV -e CONFORM_UNSET --add-host db:10.0.0.2 \
    --add-host gw:host-gateway --shm-size 96m --ulimit core=-1 --ulimit nofile=1234:2345 \
    busybox sh -c 'echo "A=$A PATH=$PATH E=$CONFORM_FROM_ENV U=${CONFORM_UNSET-unset}";
        grep -E "[[:space:]](db|gw)$" /etc/hosts; df -k /dev/shm | tail -n1 | tr -s " " | cut -d" " -f2;
        echo "core=$(ulimit -c) nofile=$(ulimit -n)/$(ulimit -Hn)"' 2>&1)
check_eq "cstore run -e: K=V over the image's, K from the environment, an unset K left out" \
    "$(sed -n 1p <<<"$out")" "A=1 PATH=/bin E=from-env U=unset"
check_eq "cstore run --add-host: the lines in /etc/hosts (host-gateway is 127.0.0.1)" \
    "$(sed -n '2,3p' <<<"$out")" "$(printf '10.0.0.2\tdb\n127.0.0.1\tgw')"
check_eq "cstore run --shm-size 96m: /dev/shm is 96 MiB" "$(sed -n 4p <<<"$out")" 98304
check_eq "cstore run --ulimit: core unlimited, nofile 1234 soft / 2345 hard" \
    "$(sed -n 5p <<<"$out")" "core=unlimited nofile=1234/2345"
bad=$(cs run --ulimit nofile=2:1 busybox true 2>&1)
check_fails "cstore run --ulimit with soft > hard fails" cs run --ulimit nofile=2:1 busybox true
check_eq "... with docker's message, one line" \
    "$(grep -c 'soft limit must be less than or equal to hard limit: 2 > 1' <<<"$bad")" 1
check_fails "cstore run --add-host without an IP fails" cs run --add-host db busybox true
check_fails "cstore run --shm-size x fails" cs run --shm-size x busybox true

finish
