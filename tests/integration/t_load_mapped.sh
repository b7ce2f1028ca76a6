#!/usr/bin/env bash
# Loads of a plain archive read its layers in place (the archive mapped, load_source_map): the
# same image, records and export bytes as a load of the same archive gzipped (read through
# libarchive, nothing mapped); a byte flipped inside a layer of the mapped archive, or the archive
# cut inside a layer, fails the load with one `cstore: ` line and leaves the store as it was.
. "$(dirname "$0")/lib.sh"
need jq python3 gzip cmp
bases

src=$BASES/busybox.docker.tar
mkdir -p "$T/work"

# one_line_failure DESC PATH: the load fails, one stderr line naming PATH, store unchanged.
one_line_failure() {
    local desc=$1 path=$2 before du rc
    before=$(cs images --json)
    du=$(du_counts)
    "$CSTORE" --root "$ROOT" load "$path" >"$T/work/out" 2>"$T/work/err"
    rc=$?
    check_cmp "$desc: the load fails" "$rc" -ne 0
    check_eq "$desc: exactly one stderr line" "$(wc -l <"$T/work/err")" 1
    check_eq "$desc: the line starts 'cstore: ' and names the input" \
        "$(grep -c "^cstore: .*$(basename "$path")" "$T/work/err")" 1
    echo "  ($(head -c 300 "$T/work/err"))"
    check_eq "$desc: images as before" "$(cs images --json)" "$before"
    check_eq "$desc: records as before" "$(du_counts)" "$du"
    check "$desc: fsck is clean" cs fsck
}

# --- the same image either way ---
must cs load "$src"
id_mapped=$(cs inspect busybox | jq -r '.id')
counts_mapped=$(du_counts)
must cs export busybox -o "$T/work/mapped.tar"
check "a mapped load: fsck is clean" cs fsck

gzip -c "$src" >"$T/work/busybox.docker.tar.gz"
ROOT=$T/root-gz
must cs load "$T/work/busybox.docker.tar.gz"
check_eq "a gzipped archive (not mapped) gives the same image id" \
    "$(cs inspect busybox | jq -r '.id')" "$id_mapped"
check_eq "... and the same records" "$(du_counts)" "$counts_mapped"
must cs export busybox -o "$T/work/gz.tar"
check "... and the same export bytes" cmp "$T/work/mapped.tar" "$T/work/gz.tar"

# --- bad bytes in place ---
ROOT=$T/root
# The layer member's data offset in the archive, and a regular file's data offset in the layer.
python3 - "$src" "$T/work/flipped.docker.tar" "$T/work/cut.docker.tar" <<'PY'
import shutil, sys, tarfile
src, flipped, cut = sys.argv[1:]
with tarfile.open(src) as outer:
    layer = max((m for m in outer.getmembers() if m.isfile()), key=lambda m: m.size)
    with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
        f = max((m for m in inner.getmembers() if m.isfile()), key=lambda m: m.size)
        off = layer.offset_data + f.offset_data + f.size // 2
shutil.copy(src, flipped)
with open(flipped, "r+b") as fh:
    fh.seek(off)
    b = fh.read(1)
    fh.seek(off)
    fh.write(bytes([b[0] ^ 0x40]))
with open(src, "rb") as fh, open(cut, "wb") as out:
    out.write(fh.read(off))
PY
one_line_failure "a byte flipped inside a mapped layer" "$T/work/flipped.docker.tar"
grep -q "does not match" "$T/work/err" || check_eq "the flipped byte is named as a digest mismatch" \
    "$(cat "$T/work/err")" "... does not match ..."
one_line_failure "an archive cut inside a layer" "$T/work/cut.docker.tar"
# A mapped archive truncated under a load raises SIGBUS: one line, exit 1, store as it was. The
# handler is process-wide; a load blocked opening a FIFO gets the signal at a known point.
ROOT=$T/root-bus
must cs load "$src"
before=$(du_counts)
mkfifo "$T/work/fifo.tar"
"$CSTORE" --root "$ROOT" load "$T/work/fifo.tar" 2>"$T/work/bus.err" &
pid=$!
for _ in $(seq 100); do grep -q "fifo\|partner" "/proc/$pid/wchan" 2>/dev/null && break; sleep 0.05; done
kill -BUS "$pid"
wait "$pid"
rc=$?
check_eq "SIGBUS: the command exits 1 (no core dump, no signal death)" "$rc" 1
check_eq "SIGBUS: one stderr line" "$(wc -l <"$T/work/bus.err")" 1
check "SIGBUS: the line says what happened" grep -q '^cstore: .*truncated.*(SIGBUS)' "$T/work/bus.err"
check_eq "SIGBUS: records as before" "$(du_counts)" "$before"
check "SIGBUS: fsck is clean" cs fsck
finish
