# lib.sh - helpers for the end-to-end tests (sourced by t_*.sh).
#
# Environment (ctest sets the first three):
#   CSTORE            the cstore binary under test (default: $CSTORE_SRC/build/cstore)
#   CSTORE_SRC        the repository (default: two levels up from here)
#   CSTORE_BASES      cache of the base images made by tests/mkbase.sh
#                     (default: $CSTORE_SRC/out/bases; shared by concurrent runs, flock'ed)
#   CSTORE_TEST_LIGHT=1  use only the small busybox image for the heavy matrices (ASan runs)
#   CSTORE_TEST_KEEP=1   keep the temp dir of a run
#   CSTORE_CI=1          a missing requirement (root, runc, a tool) fails the test instead of
#                        skipping it (need.sh)
#
# A test calls check/check_eq/...; each prints "ok - ..." or "FAIL - ..." and counts. At exit the
# last line is exactly "N passed, M failed" and the exit status is non-zero when M > 0 or when the
# script died early. exit 77 = skipped (ctest SKIP_RETURN_CODE): see need/skip in need.sh.

set -u -o pipefail
export LC_ALL=C

_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CSTORE_SRC=${CSTORE_SRC:-$(cd "$_lib_dir/../.." && pwd)}
CSTORE=${CSTORE:-$CSTORE_SRC/build/cstore}
CSTORE_BASES=${CSTORE_BASES:-$CSTORE_SRC/out/bases}
CSTORE_TEST_LIGHT=${CSTORE_TEST_LIGHT:-0}
export CSTORE CSTORE_SRC CSTORE_BASES

PASS=0
FAIL=0
_done=0
T=

_skip_rc=
. "$_lib_dir/need.sh"

_cleanup() {
    local rc=$?
    trap - EXIT
    if [ -n "$T" ] && [ -d "$T" ]; then
        if [ "${CSTORE_TEST_KEEP:-0}" = 1 ]; then
            echo "kept $T"
        else
            # umoci unpack and friends may leave read-only dirs behind.
            chmod -R u+rwX "$T" 2>/dev/null
            rm -rf "$T"
        fi
    fi
    [ -n "$_skip_rc" ] && exit "$_skip_rc"
    if [ "$rc" -ne 0 ] && [ "$_done" != 1 ]; then
        echo "FAIL - test script died (exit $rc) before its end"
        FAIL=$((FAIL + 1))
    fi
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ] || exit 1
    exit 0
}

# finish: call at the end of a test script.
finish() {
    _done=1
    exit 0
}

[ -x "$CSTORE" ] || skip "cstore binary '$CSTORE' not found (set CSTORE)"
need root # owners, umoci unpack, chroot

T=$(mktemp -d "${TMPDIR:-/tmp}/cstore-e2e.XXXXXX")
trap _cleanup EXIT
ROOT=$T/root
export CSTORE_ROOT=$ROOT

# cs ARGS...: runs cstore on the test's store root.
cs() { "$CSTORE" --root "$ROOT" "$@"; }

_ok() {
    PASS=$((PASS + 1))
    echo "ok - $1"
}
_fail() {
    FAIL=$((FAIL + 1))
    echo "FAIL - $1"
}

# _show_cmd NOTE OUT CMD ARGS...: after a failed check, the command, NOTE (when not empty) and the
# tail of its output OUT.
_show_cmd() {
    local note=$1 out=$2
    shift 2
    echo "  command: $*" | head -c 2000
    [ -n "$note" ] && echo "  $note"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /'
}

# check DESC CMD ARGS...: passes when CMD exits 0. Output of CMD is shown only on failure.
check() {
    local desc=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then
        _ok "$desc"
    else
        _fail "$desc"
        _show_cmd "exit $rc; output:" "$out" "$@"
    fi
    return $rc
}

# check_fails DESC CMD ARGS...: passes when CMD exits non-zero.
check_fails() {
    local desc=$1 out
    shift
    if ! out=$("$@" 2>&1); then
        _ok "$desc"
        return 0
    fi
    _fail "$desc (exit 0, expected failure)"
    _show_cmd "" "$out" "$@"
    return 1
}

# check_eq DESC GOT WANT
check_eq() {
    if [ "$2" == "$3" ]; then
        _ok "$1"
    else
        _fail "$1"
        echo "  got:  $(printf '%s' "$2" | head -c 1500)"
        echo "  want: $(printf '%s' "$3" | head -c 1500)"
        return 1
    fi
}

check_cmp() { # DESC A OP B  (numeric: -eq -lt -gt -le -ge -ne)
    if [ "$2" "$3" "$4" ] 2>/dev/null; then
        _ok "$1"
    else
        _fail "$1 ($2 $3 $4 is false)"
        return 1
    fi
}

# must CMD ARGS...: a set-up step; failing it aborts the test (counted as a failure).
must() {
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ]; then
        _fail "set-up step: $*"
        printf '%s\n' "$out" | tail -n 30 | sed 's/^/    /'
        exit 1
    fi
    [ -z "$out" ] || printf '%s\n' "$out" | tail -n 3 | sed 's/^/  | /'
}

# bases: makes (once, cached, flock'ed by mkbase.sh) the base images; sets BASES.
bases() {
    # /bin/busybox: package busybox-static; /usr/lib/go: golang-go
    need tar gzip jq sha256sum skopeo flock /bin/busybox /usr/lib/go
    must bash "$CSTORE_SRC/tests/mkbase.sh" "$CSTORE_BASES"
    BASES=$CSTORE_BASES
}

# variant NAME KIND: an OCI layout of base NAME with zstd or uncompressed ("none") layers, made
# with skopeo and cached next to the bases; prints its path.
variant() {
    local name=$1 kind=$2 dst
    dst=$BASES/$name.$kind.oci
    (
        flock 9
        if [ ! -f "$dst/index.json" ] || [ "$dst/index.json" -ot "$BASES/$name.oci/index.json" ]; then
            rm -rf "$dst" "$dst.tmp"
            case $kind in
            zstd) skopeo copy -q --dest-compress-format zstd --dest-compress \
                "oci:$BASES/$name.oci:latest" "oci:$dst.tmp:latest" ;;
            none) oci_plain "$BASES/$name.oci" "$dst.tmp" ;;
            esac && mv "$dst.tmp" "$dst"
        fi
    ) 9>"$BASES/.lock" >&2 || return 1
    echo "$dst"
}

# du_json FIELD: a field of `cstore du --json`.
du_json() { cs du --json | jq -r ".$1"; }

# du_counts: the record counts of `cstore du --json` (stable under no-op commands).
du_counts() { cs du --json | jq -cS '{images, tags, trees, contents, chunks, unique_bytes, stored_bytes}'; }

# rootfs_manifest DIR: one line per entry below DIR (sorted): path, type, mode (incl.
# setuid/setgid/sticky), uid, gid, link target, device numbers, xattrs, and for non-directories
# the link count, size, mtime (seconds: umoci drops the nanoseconds) and sha256 of regular files. Two trees with the same manifest
# have the same files, modes, owners, link targets and contents.
rootfs_manifest() {
    python3 - "$1" <<'PY'
import hashlib, os, stat, sys
top = sys.argv[1]
out = []
for dirpath, dirs, files in os.walk(top):
    for name in dirs + files:
        p = os.path.join(dirpath, name)
        rel = os.path.relpath(p, top)
        st = os.lstat(p)
        m = st.st_mode
        kind = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c",
                stat.S_IFBLK: "b", stat.S_IFIFO: "p", stat.S_IFSOCK: "s"}[stat.S_IFMT(m)]
        f = [repr(rel), kind, "%o" % stat.S_IMODE(m), str(st.st_uid), str(st.st_gid)]
        if kind == "l":
            f.append("-> " + repr(os.readlink(p)))
        if kind in "cb":
            f.append("dev=%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
        try:
            xs = sorted(os.listxattr(p, follow_symlinks=False))
            f += ["x:%s=%r" % (x, os.getxattr(p, x, follow_symlinks=False)) for x in xs]
        except OSError:
            pass
        if kind != "d":
            f += ["n=%d" % st.st_nlink, "mtime=%d" % (st.st_mtime_ns // 10**9)]
        if kind == "f":
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for b in iter(lambda: fh.read(1 << 20), b""):
                    h.update(b)
            f += ["size=%d" % st.st_size, h.hexdigest()]
        out.append(" ".join(f))
out.sort()
sys.stdout.write("".join(l + "\n" for l in out))
PY
}

# unpack IMAGE_REF DIR: umoci unpack of an OCI layout ref (DIR:TAG) into DIR; the rootfs is
# DIR/rootfs.
unpack() {
    rm -rf "$2"
    umoci unpack --image "$1" "$2" >/dev/null
}

# oci_tag LAYOUT_DIR: the ref.name of the first manifest of an OCI layout.
oci_tag() { jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"] // empty' "$1/index.json"; }

# mk_oci LAYOUT_DIR LAYER_FILE... [-- CONFIG_FILE]: an OCI layout with the given layer blobs (used as
# they are: compressed or not) and a generated config, or CONFIG_FILE as the config bytes.
# Digests in the manifest are correct; the layer contents may be hostile.
mk_oci() {
    local dir=$1 cfg="" l d s layers="[]" diffs="[]" c m
    shift
    rm -rf "$dir"
    mkdir -p "$dir/blobs/sha256"
    while [ $# -gt 0 ]; do
        if [ "$1" = -- ]; then
            cfg=$2
            break
        fi
        l=$1
        shift
        d=$(sha256sum "$l" | cut -d' ' -f1)
        s=$(stat -c %s "$l")
        cp "$l" "$dir/blobs/sha256/$d"
        local mt=application/vnd.oci.image.layer.v1.tar diff=$d
        case $(head -c 2 "$l" | od -An -tx1 | tr -d ' ') in
        1f8b) mt=$mt+gzip diff=$(gzip -dc "$l" | sha256sum | cut -d' ' -f1) ;;
        28b5) mt=$mt+zstd diff=$(zstd -dc "$l" | sha256sum | cut -d' ' -f1) ;;
        esac
        layers=$(jq -c --arg d "sha256:$d" --argjson s "$s" --arg mt "$mt" \
            '. + [{mediaType: $mt, digest: $d, size: $s}]' <<<"$layers")
        diffs=$(jq -c --arg d "sha256:$diff" '. + [$d]' <<<"$diffs")
    done
    if [ -n "$cfg" ]; then
        cp "$cfg" "$T/cfg.tmp"
    else
        jq -cn --argjson diffs "$diffs" '{created: "1970-01-01T00:00:00Z", architecture: "amd64",
            os: "linux", config: {Cmd: ["sh"]}, rootfs: {type: "layers", diff_ids: $diffs}}' |
            tr -d '\n' >"$T/cfg.tmp"
    fi
    c=$(sha256sum "$T/cfg.tmp" | cut -d' ' -f1)
    mv "$T/cfg.tmp" "$dir/blobs/sha256/$c"
    jq -cn --arg c "sha256:$c" --argjson cs "$(stat -c %s "$dir/blobs/sha256/$c")" \
        --argjson layers "$layers" '{schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
        layers: $layers}' | tr -d '\n' >"$T/man.tmp"
    m=$(sha256sum "$T/man.tmp" | cut -d' ' -f1)
    jq -cn --arg m "sha256:$m" --argjson ms "$(stat -c %s "$T/man.tmp")" '{schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m,
                     size: $ms, annotations: {"org.opencontainers.image.ref.name": "latest"}}]}' \
        >"$dir/index.json"
    mv "$T/man.tmp" "$dir/blobs/sha256/$m"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
}

# oci_blob LAYOUT WHICH: path of a blob of the first manifest (WHICH: manifest, config, layer0..)
oci_blob() {
    local dir=$1 which=$2 m d
    m=$(jq -r '.manifests[0].digest' "$dir/index.json")
    case $which in
    manifest) d=$m ;;
    config) d=$(jq -r '.config.digest' "$dir/blobs/sha256/${m#sha256:}") ;;
    layer*) d=$(jq -r ".layers[${which#layer}].digest" "$dir/blobs/sha256/${m#sha256:}") ;;
    esac
    echo "$dir/blobs/sha256/${d#sha256:}"
}

# oci_archive LAYOUT FILE: tar of a layout.
oci_archive() { tar -C "$1" -cf "$2" oci-layout index.json blobs; }

# oci_plain SRC DST: a copy of OCI layout SRC (first manifest) with every layer decompressed (gzip
# or zstd, by its magic) to a plain tar, and the same config bytes: what umoci (no zstd support in
# Debian 12's umoci) unpacks. Tag "latest".
oci_plain() {
    local src=$1 dst=$2 i n b args=()
    n=$(jq '.layers | length' "$(oci_blob "$src" manifest)")
    mkdir -p "$T/plain"
    for ((i = 0; i < n; i++)); do
        b=$(oci_blob "$src" "layer$i")
        case $(head -c 4 "$b" | od -An -tx1 | tr -d ' ') in
        1f8b*) gzip -dc "$b" >"$T/plain/$i.tar" ;;
        28b52ffd) zstd -qdc "$b" >"$T/plain/$i.tar" ;;
        *) cp "$b" "$T/plain/$i.tar" ;;
        esac || return 1
        args+=("$T/plain/$i.tar")
    done
    mk_oci "$dst" "${args[@]}" -- "$(oci_blob "$src" config)"
    rm -rf "$T/plain"
}

# run_leftovers: what RUNs on $ROOT may leave behind, as counts "MOUNTS RUN_DIRS CONTAINERS":
# mounts under the root, ROOT/tmp/run-* dirs and the runtime's containers in ROOT/tmp/runc.
run_leftovers() {
    echo "$(awk -v r="$ROOT/" 'index($5, r) == 1' /proc/self/mountinfo | wc -l)" \
        "$(find "$ROOT/tmp" -maxdepth 1 -name 'run-*' 2>/dev/null | wc -l)" \
        "$(runc --root "$ROOT/tmp/runc" list -q 2>/dev/null | wc -l)"
}
