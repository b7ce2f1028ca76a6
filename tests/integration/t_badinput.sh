#!/usr/bin/env bash
# Hostile and broken inputs: each `cstore load` fails with exactly one `cstore: ` line on stderr
# naming the input, writes nothing outside the store, and leaves the store exactly as it was.
. "$(dirname "$0")/lib.sh"
need jq python3 tar gzip
bases

ROOT=$T/root
must cs load "$BASES/busybox.oci.tar"
snap_images=$(cs images --json)
snap_du=$(du_counts)
tree_bb=$(cs inspect busybox | jq -r '.layers[0].tree')

# Canary: loads run with the cwd deep inside it, so "../x" and "../../x" land inside; afterwards
# nothing below $T but the store root (and our own outputs) may be new.
canary=$T/canary
mkdir -p "$canary/a/b/c" "$T/work" "$T/out"
find "$T" -exec touch -h -d "-2 min" {} +
touch -d "-1 min" "$T/marker"

# Layer tars (made with python's tarfile: GNU tar refuses to write most of these).
python3 - "$T/work" <<'PY'
import io, os, sys, tarfile
out = sys.argv[1]

def tar(name, members, fmt=tarfile.PAX_FORMAT):
    with tarfile.open(os.path.join(out, name), "w", format=fmt) as t:
        for m in members:
            if isinstance(m, tuple):
                info, data = m
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(m)

def f(name, data=b"evil\n", mode=0o644):
    i = tarfile.TarInfo(name); i.mode = mode; i.mtime = 0
    return (i, data)

def d(name):
    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = 0o755
    return i

def sym(name, target):
    i = tarfile.TarInfo(name); i.type = tarfile.SYMTYPE; i.linkname = target
    return i

def hard(name, target):
    i = tarfile.TarInfo(name); i.type = tarfile.LNKTYPE; i.linkname = target
    return i

tar("dotdot.tar", [d("etc"), f("etc/ok"), f("../evil")])
tar("dotdot-deep.tar", [d("etc"), f("etc/../../../evil2")])
tar("absolute.tar", [d("etc"), f("/etc/evil")])
tar("symlink-escape.tar", [sym("link", "/"), f("link/etc/x")])
tar("symlink-rel-escape.tar", [d("a"), sym("a/up", "../.."), f("a/up/x")])
tar("hardlink-outside.tar", [d("etc"), hard("etc/h", "../../outside")])
tar("good.tar", [d("etc"), f("etc/ok", b"fine\n")])

# Absurd size field: a valid ustar header for a 5-byte file whose size field then says 2^62
# bytes (base-256 encoding), checksum recomputed; 5 bytes of data follow, then the end.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
    i, data = f("big")
    i.size = len(data)
    t.addfile(i, io.BytesIO(data))
raw = bytearray(buf.getvalue())
hdr = raw[:512]
hdr[124:136] = b"\x80" + (1 << 62).to_bytes(11, "big")
hdr[148:156] = b"        "
hdr[148:156] = ("%06o\0 " % sum(hdr)).encode()
raw[:512] = hdr
open(os.path.join(out, "absurd-size.tar"), "wb").write(bytes(raw))

# An octal size field with garbage digits.
raw2 = bytearray(buf.getvalue())
hdr = raw2[:512]
hdr[124:136] = b"99999999999\0"
hdr[148:156] = b"        "
hdr[148:156] = ("%06o\0 " % sum(hdr)).encode()
raw2[:512] = hdr
open(os.path.join(out, "bad-size-digits.tar"), "wb").write(bytes(raw2))
PY

# bad_load DESC PATH: the load fails cleanly.
bad_load() {
    local desc=$1 path=$2 name rc lines
    name=$(basename "$path")
    (cd "$canary/a/b/c" && "$CSTORE" --root "$ROOT" load "$path") >"$T/out/stdout" 2>"$T/out/stderr"
    rc=$?
    check_cmp "$desc: load fails" "$rc" -ne 0
    lines=$(wc -l <"$T/out/stderr")
    if ! check_eq "$desc: exactly one stderr line" "$lines" 1; then
        head -n 5 "$T/out/stderr" | sed 's/^/    /'
    fi
    check_eq "$desc: the line starts 'cstore: ' and names the input" \
        "$(grep -c "^cstore: .*$name" "$T/out/stderr")" 1 || sed 's/^/    /' "$T/out/stderr"
    [ "$rc" -ne 0 ] && [ "$lines" -eq 1 ] && echo "  ($(cat "$T/out/stderr"))"
    check_eq "$desc: nothing written outside the store" \
        "$(find "$T" -newer "$T/marker" -not -path "$ROOT" -not -path "$ROOT/*" -not -path "$T/out/*" \
            -not -path "$T/work*" -not -path "$T/out" -not -path "$T/marker" -not -path "$T" -print)" ""
    check_eq "$desc: /etc untouched" "$(ls -d /etc/evil /etc/x /evil /evil2 /outside 2>/dev/null)" ""
    check_eq "$desc: images as before" "$(cs images --json)" "$snap_images"
    check_eq "$desc: du as before" "$(du_counts)" "$snap_du"
    check "$desc: fsck clean" cs fsck
    touch -d '-1 min' "$T/marker"
}

# Hostile layers, each wrapped in an otherwise valid OCI layout, archive and docker-archive.
for l in dotdot dotdot-deep absolute symlink-escape symlink-rel-escape hardlink-outside \
    absurd-size bad-size-digits; do
    mk_oci "$T/work/$l.oci" "$T/work/$l.tar"
    bad_load "layer $l (oci dir)" "$T/work/$l.oci"
    gzip -n -c "$T/work/$l.tar" >"$T/work/$l.tar.gz"
    mk_oci "$T/work/$l-gz.oci" "$T/work/$l.tar.gz"
    oci_archive "$T/work/$l-gz.oci" "$T/work/$l-gz.oci.tar"
    bad_load "layer $l (gzip, oci archive)" "$T/work/$l-gz.oci.tar"
done

# The busybox layer, then a hostile layer on top: the first layer must not be kept either.
bl=$(oci_blob "$BASES/busybox.oci" layer0)
mk_oci "$T/work/two.oci" "$bl" "$T/work/absolute.tar"
bad_load "busybox layer + hostile layer" "$T/work/two.oci"

# Truncated archives.
sz=$(stat -c %s "$BASES/busybox.oci.tar")
head -c $((sz / 2)) "$BASES/busybox.oci.tar" >"$T/work/truncated.oci.tar"
bad_load "truncated oci archive" "$T/work/truncated.oci.tar"
sz=$(stat -c %s "$BASES/golang.docker.tar")
head -c $((sz - 100000)) "$BASES/golang.docker.tar" >"$T/work/truncated.docker.tar"
bad_load "truncated docker-archive" "$T/work/truncated.docker.tar"
head -c 300 "$(oci_blob "$BASES/busybox.oci" layer0)" >"$T/work/trunc-layer.tar"
mk_oci "$T/work/trunc-layer.oci" "$T/work/trunc-layer.tar"
bad_load "truncated gzip layer" "$T/work/trunc-layer.oci"
: >"$T/work/empty.tar"
bad_load "empty file" "$T/work/empty.tar"

# A layer blob whose bytes do not match its digest: a different valid layer under the name.
cp -r "$BASES/busybox.oci" "$T/work/mismatch.oci"
b=$(oci_blob "$T/work/mismatch.oci" layer0)
chmod u+w "$b"
gzip -n -c "$T/work/good.tar" >"$b"
bad_load "layer blob with the wrong digest (oci dir)" "$T/work/mismatch.oci"
oci_archive "$T/work/mismatch.oci" "$T/work/mismatch.oci.tar"
bad_load "layer blob with the wrong digest (oci archive)" "$T/work/mismatch.oci.tar"
# ... and one flipped byte in the middle of the real layer.
cp -r "$BASES/busybox.oci" "$T/work/flip.oci"
b=$(oci_blob "$T/work/flip.oci" layer0)
chmod u+w "$b"
python3 - "$b" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(b)
PY
bad_load "layer blob with a flipped byte" "$T/work/flip.oci"
# A config whose bytes do not match its digest.
cp -r "$BASES/busybox.oci" "$T/work/cfgmismatch.oci"
b=$(oci_blob "$T/work/cfgmismatch.oci" config)
chmod u+w "$b"
sed 's/"Cmd":\["sh"\]/"Cmd":["xx"]/' "$b" >"$b.new" && mv "$b.new" "$b" # same size
check_cmp "the changed config has another digest" "$(sha256sum <"$b" | cut -d' ' -f1)" != "${b##*/}"
bad_load "config blob with the wrong digest" "$T/work/cfgmismatch.oci"
# docker-archive whose layer is not what the config's diff_ids say.
mkdir -p "$T/work/dock" && tar -C "$T/work/dock" -xf "$BASES/busybox.docker.tar"
for f in "$T"/work/dock/*.tar; do
    [ -L "$f" ] || cp "$T/work/good.tar" "$f"
done
tar -C "$T/work/dock" -cf "$T/work/mismatch.docker.tar" .
bad_load "docker-archive layer not matching diff_ids" "$T/work/mismatch.docker.tar"

# A manifest naming a missing blob.
cp -r "$BASES/busybox.oci" "$T/work/missing.oci"
rm -f "$(oci_blob "$T/work/missing.oci" layer0)"
bad_load "manifest naming a missing layer blob" "$T/work/missing.oci"
oci_archive "$T/work/missing.oci" "$T/work/missing.oci.tar"
bad_load "manifest naming a missing layer blob (archive)" "$T/work/missing.oci.tar"
cp -r "$BASES/busybox.oci" "$T/work/missingcfg.oci"
rm -f "$(oci_blob "$T/work/missingcfg.oci" config)"
bad_load "manifest naming a missing config blob" "$T/work/missingcfg.oci"
cp -r "$BASES/busybox.oci" "$T/work/missingman.oci"
rm -f "$(oci_blob "$T/work/missingman.oci" manifest)"
bad_load "index naming a missing manifest" "$T/work/missingman.oci"

# Non-JSON config (with a correct digest), non-JSON index, a config that is JSON but not an image.
printf 'this is { not json' >"$T/work/notjson"
mk_oci "$T/work/notjson.oci" "$(oci_blob "$BASES/busybox.oci" layer0)" -- "$T/work/notjson"
bad_load "non-JSON config" "$T/work/notjson.oci"
printf '[1,2,3]' >"$T/work/array.json"
mk_oci "$T/work/array.oci" "$(oci_blob "$BASES/busybox.oci" layer0)" -- "$T/work/array.json"
bad_load "config that is a JSON array" "$T/work/array.oci"
cp -r "$BASES/busybox.oci" "$T/work/badindex.oci"
chmod u+w "$T/work/badindex.oci/index.json"
printf '{"schemaVersion": 2, "manifests": [' >"$T/work/badindex.oci/index.json"
bad_load "non-JSON index.json" "$T/work/badindex.oci"
# The config lists fewer diff_ids than the manifest has layers.
jq -c '.rootfs.diff_ids = []' "$(oci_blob "$BASES/busybox.oci" config)" >"$T/work/nodiff.json"
mk_oci "$T/work/nodiff.oci" "$(oci_blob "$BASES/busybox.oci" layer0)" -- "$T/work/nodiff.json"
bad_load "config with fewer diff_ids than layers" "$T/work/nodiff.oci"

# Not an image at all.
bad_load "a directory that is not an image" "$canary"
printf 'hello' >"$T/work/hello.txt"
bad_load "a text file" "$T/work/hello.txt"
bad_load "a path that does not exist" "$T/work/nonexistent.tar"

# After all that: the store works and still holds exactly busybox.
check_eq "busybox's tree unchanged" "$(cs inspect busybox | jq -r '.layers[0].tree')" "$tree_bb"
check "load of a good image still works" cs load "$BASES/busybox.docker.tar"
check "fsck at the end" cs fsck
finish
