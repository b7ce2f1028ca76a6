#!/usr/bin/env bash
# build's --tls-verify and --cert-dir reach every registry the build talks to (Debian's
# docker-registry with TLS and basic auth on loopback): without them a build whose cache or base
# lives on a registry with an unknown CA fails in one line; with --cert-dir the cache is
# exported, imported (every step CACHED) and its chunks fetched for -o, and a FROM image is
# pulled (--pull); --tls-verify=false works as well.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
. "$(dirname "$0")/cache_lib.sh"
need root overlayfs runc jq
export DOCKER_CONFIG=$T/docker HOME=$T/home XDG_RUNTIME_DIR=$T/xdg CSTORE_CERTS_D=$T/certs.d
unset REGISTRY_AUTH_FILE
bases
registry_start tls
must registry_seed lib/busybox:1 busybox
out=$(echo "$REG_PASS" | cs login -u "$REG_USER" --password-stdin --cert-dir "$REG_CERTS" "$REG_ADDR" 2>&1)
check_eq "login with --cert-dir" "$out" "Login Succeeded"

lctx=$T/light
light_project "$lctx"
ref=$REG_ADDR/cache/light:c
ROOT=$T/a
must cs load "$BASES/busybox.docker.tar"
out=$(build_plain -t app --cache-to "type=registry,ref=$ref,mode=max" "$lctx")
rc=$?
check_cmp "a cache on a registry whose CA is unknown: the build fails" "$rc" -ne 0
check_eq "... in one line" "$(grep -c '^cstore: ' <<<"$out")" 1
out=$(build_plain -t app --cert-dir "$REG_CERTS" --cache-to "type=registry,ref=$ref,mode=max" "$lctx")
check "with --cert-dir the cache is pushed" grep -q '^cache: pushed' <<<"$out"
ida=$(tail -n 1 <<<"$out")

ROOT=$T/b
out=$(build_plain -t app --cert-dir "$REG_CERTS" --cache-from "type=registry,ref=$ref" \
    -o "type=local,dest=$T/b-out" "$lctx")
check_eq "with --cert-dir an empty root builds the same image" "$(tail -n 1 <<<"$out")" "$ida"
check_eq "... every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
check_eq "... and -o wrote its files, their chunks fetched from the registry" \
    "$(cat "$T/b-out/out.txt" 2>&1)" "built line 1"

ROOT=$T/c
out=$(build_plain -t app --tls-verify=false --cache-from "type=registry,ref=$ref" "$lctx")
check_eq "with --tls-verify=false too" "$(cached_steps "$out")" "$(layer_steps "$out")"
# The image's bytes are still in the registry's packs: export and run fetch them.
out=$(cs export app -o "$T/c.tar" 2>&1)
check_cmp "export of a cached image whose packs sit behind an unknown CA fails" "$?" -ne 0
check_eq "... in one line" "$(grep -c '^cstore: ' <<<"$out")" 1
check "export --cert-dir fetches the image's chunks" \
    cs export app --cert-dir "$REG_CERTS" -o "$T/c.tar"
check "... and writes the image" tar -tf "$T/c.tar" index.json
ROOT=$T/e
must cs load "$BASES/busybox.docker.tar"
must build_plain -t app --tls-verify=false --cache-from "type=registry,ref=$ref" "$lctx"
check_eq "run --cert-dir runs a cached image whose chunks are in the registry" \
    "$(cs run --cert-dir "$REG_CERTS" app cat /out.txt 2>&1)" "built line 1"

# --pull's resolver: FROM an image of that registry, on an empty root.
mkdir -p "$T/pull"
printf 'FROM %s/lib/busybox:1\nRUN echo pulled >/p.txt\n' "$REG_ADDR" >"$T/pull/Dockerfile"
ROOT=$T/d
out=$(cs build --progress quiet -t p "$T/pull" 2>&1)
check_cmp "FROM a registry whose CA is unknown: the build fails" "$?" -ne 0
check "with --cert-dir the FROM image is pulled and built on" \
    cs build --progress quiet --cert-dir "$REG_CERTS" -t p "$T/pull"
check_eq "... RUN ran on it" "$(cs run p cat /p.txt)" "pulled"

finish
