#!/usr/bin/env bash
# Images in and out: load busybox and golang in every form (OCI layout dir with gzip, zstd and
# uncompressed layers, OCI archive, docker-archive), list, inspect, name them, and export them in
# every format and compression. Debian's skopeo and umoci must accept every export, and the
# unpacked files must be exactly the loaded ones. Exports are deterministic.
. "$(dirname "$0")/lib.sh"
need skopeo umoci jq zstd python3 tar
bases

heavy="busybox golang" # images that go through the export matrix
[ "$CSTORE_TEST_LIGHT" = 1 ] && heavy=busybox

config_digest() { jq -r '.config.digest' "$(oci_blob "$BASES/$1.oci" manifest)"; }
diff_ids() { jq -c '.rootfs.diff_ids' "$(oci_blob "$BASES/$1.oci" config)"; }

# --- load every form into its own fresh store: same image id (the config digest) each time ---
forms() {
    local n=$1
    echo "oci-dir:$BASES/$n.oci"
    echo "oci-archive:$BASES/$n.oci.tar"
    echo "docker-archive:$BASES/$n.docker.tar"
    if [ "$n" = busybox ] || [ "$CSTORE_TEST_LIGHT" != 1 ]; then
        echo "oci-dir-zstd:$(variant "$n" zstd)"
        echo "oci-dir-plain:$(variant "$n" none)"
    fi
}
for n in busybox golang; do
    want_id=$(config_digest "$n")
    for f in $(forms "$n"); do
        [ "$n" = golang ] && [ "$CSTORE_TEST_LIGHT" = 1 ] && [ "${f%%:*}" != docker-archive ] && continue
        kind=${f%%:*} path=${f#*:} extra=()
        # The zstd/plain variants (skopeo, oci_plain) name the manifest "latest" only: no
        # repository, so no tag from the archive; name them with -t.
        case $kind in oci-dir-*) extra=(-t "$n") ;; esac
        ROOT=$T/root-$n-$kind
        check "load $n from $kind" cs load "$path" "${extra[@]}" || continue
        check_eq "$n from $kind: image id is the config digest" \
            "$(cs images --json | jq -r '.[].id')" "$want_id"
        check_eq "$n from $kind: diff_ids kept" \
            "$(cs inspect "$n" | jq -c '[.layers[].diff_id]')" "$(diff_ids "$n")"
        check_eq "$n from $kind: tag from the archive kept" \
            "$(cs images --json | jq -c '.[].tags')" "[\"$n:latest\"]"
        check "$n from $kind: fsck" cs fsck
        # Loading the same image again changes nothing.
        before=$(du_counts)
        check "$n from $kind: load again" cs load "$path" "${extra[@]}"
        check_eq "$n from $kind: second load stores nothing new" "$(du_counts)" "$before"
    done
done

# --- one store with both images for the rest ---
ROOT=$T/root
must cs load "$BASES/busybox.oci.tar"
must cs load "$BASES/golang.docker.tar"
check_eq "images --json lists both" "$(cs images --json | jq -c '[.[].tags[]] | sort')" \
    '["busybox:latest","golang:latest"]'
check "images (table) shows golang" bash -c "'$CSTORE' --root '$ROOT' images | grep -E '^golang +latest '"
check "images (table) has a header" bash -c "'$CSTORE' --root '$ROOT' images | head -1 | grep -q '^REPOSITORY'"

# inspect
gid=$(config_digest golang)
inspect=$(cs inspect golang)
check_eq "inspect: id" "$(jq -r .id <<<"$inspect")" "$gid"
check_eq "inspect: config is the loaded config" "$(jq -cS .config <<<"$inspect")" \
    "$(jq -cS . "$(oci_blob "$BASES/golang.oci" config)")"
check_eq "inspect: two layers with diff_id and size" \
    "$(jq -c '[.layers[] | (.diff_id | startswith("sha256:")) and (.size > 0)]' <<<"$inspect")" '[true,true]'
check_eq "inspect: golang's layer is several hundred MB" \
    "$(jq '.layers[1].size > 200000000' <<<"$inspect")" true
check_eq "inspect: busybox's layer is golang's first layer" \
    "$(cs inspect busybox | jq -r '.layers[0].tree')" "$(jq -r '.layers[0].tree' <<<"$inspect")"

# names are normalized as docker does
for ref in golang golang:latest library/golang library/golang:latest docker.io/library/golang:latest \
    "$gid" "${gid#sha256:}" "${gid:7:12}"; do
    check_eq "inspect '$ref' resolves golang" "$(cs inspect "$ref" | jq -r .id)" "$gid"
done
check_fails "inspect of an unknown image fails" cs inspect nosuchimage
check_eq "an unknown image: one 'cstore: ' line naming it" \
    "$(cs inspect nosuchimage 2>&1 >/dev/null | grep -c "^cstore: .*nosuchimage")" 1

# tag, -t, rmi
check "tag golang my.registry:5000/team/go:1.19" cs tag golang my.registry:5000/team/go:1.19
check_eq "the new tag resolves" "$(cs inspect my.registry:5000/team/go:1.19 | jq -r .id)" "$gid"
check "tag golang go (no tag means latest)" cs tag golang go
check_eq "go resolves as docker.io/library/go:latest" \
    "$(cs inspect docker.io/library/go:latest | jq -r .id)" "$gid"
check "load -t adds a tag" cs load "$BASES/busybox.oci" -t example/bb:v1
check_eq "tags of busybox" "$(cs inspect busybox | jq -c '.tags | sort')" \
    "$(cs images --json | jq -c --arg id "$(config_digest busybox)" '[.[] | select(.id == $id) | .tags[]] | sort')"
check_eq "example/bb:v1 resolves (docker.io/example/bb:v1)" \
    "$(cs inspect docker.io/example/bb:v1 | jq -r .id)" "$(config_digest busybox)"
check "rmi go" cs rmi go
check_fails "go is gone" cs inspect go
check_eq "golang is still there" "$(cs inspect golang | jq -r .id)" "$gid"
check "rmi my.registry:5000/team/go:1.19" cs rmi my.registry:5000/team/go:1.19
check "rmi example/bb:v1" cs rmi example/bb:v1
check_eq "images: back to two tags" "$(cs images --json | jq -c '[.[].tags[]] | sort')" \
    '["busybox:latest","golang:latest"]'
check "fsck after naming" cs fsck

# --- export matrix ---
# ref_manifest NAME: the manifest of the original image as umoci unpacks it.
declare -A REF
for n in $heavy; do
    must unpack "$BASES/$n.oci:latest" "$T/ref-$n"
    rootfs_manifest "$T/ref-$n/rootfs" >"$T/ref-$n.txt"
    rm -rf "$T/ref-$n"
    REF[$n]=$T/ref-$n.txt
done

# same_files DESC LAYOUT_DIR NAME: umoci unpack of the layout (layers made plain first: Debian's
# umoci has no zstd) matches the original's files exactly.
same_files() {
    local desc=$1 layout=$2 n=$3
    rm -rf "$T/plain.oci" "$T/unpacked"
    check "$desc: umoci unpack" plain_unpack "$layout" "$T/unpacked" || return
    rootfs_manifest "$T/unpacked/rootfs" >"$T/got.txt"
    if ! check "$desc: same files, modes, owners, links, contents" cmp -s "${REF[$n]}" "$T/got.txt"; then
        diff "${REF[$n]}" "$T/got.txt" | head -n 10 | sed 's/^/    /'
    fi
    rm -rf "$T/plain.oci" "$T/unpacked"
}

plain_unpack() { oci_plain "$1" "$T/plain.oci" && unpack "$T/plain.oci:latest" "$2"; }

# media_types LAYOUT_DIR: the layer media types of its first manifest.
media_types() { jq -c '[.layers[].mediaType] | unique' "$(oci_blob "$1" manifest)"; }

for n in $heavy; do
    nl=$(jq '.rootfs.diff_ids | length' "$(oci_blob "$BASES/$n.oci" config)")
    for c in gzip zstd none; do
        case $c in
        gzip) mt=application/vnd.oci.image.layer.v1.tar+gzip ;;
        zstd) mt=application/vnd.oci.image.layer.v1.tar+zstd ;;
        none) mt=application/vnd.oci.image.layer.v1.tar ;;
        esac
        x=$T/$n-$c.oci.tar
        check "export $n oci-archive $c" cs export "$n" -o "$x" --format oci-archive --compression "$c" || continue
        check "skopeo inspect oci-archive ($n $c)" skopeo inspect "oci-archive:$x"
        rm -rf "$T/x.oci" && mkdir "$T/x.oci" && tar -C "$T/x.oci" -xf "$x"
        check_eq "$n $c: layer media type" "$(media_types "$T/x.oci")" "[\"$mt\"]"
        check_eq "$n $c: $nl layers" "$(jq '.layers | length' "$(oci_blob "$T/x.oci" manifest)")" "$nl"
        check_eq "$n $c: index names the image" \
            "$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$T/x.oci/index.json")" \
            "latest"
        same_files "$n oci-archive $c" "$T/x.oci" "$n"
        check "export $n oci-archive $c again" cs export "$n" -o "$x.2" --format oci-archive --compression "$c"
        check "$n oci-archive $c: same bytes twice" cmp "$x" "$x.2"
        rm -f "$x.2"
        [ "$c" = gzip ] || rm -f "$x"
    done

    # Re-loading an export into a fresh store and exporting again gives the same bytes.
    x=$T/$n-gzip.oci.tar
    ROOT=$T/root-reload
    check "$n: load its own export" cs load "$x"
    check "$n: export of the re-loaded image" cs export "$n" -o "$x.3"
    check "$n: re-loaded export has the same bytes" cmp "$x" "$x.3"
    rm -rf "$ROOT" "$x" "$x.3"
    ROOT=$T/root

    d=$T/$n-dir.oci
    check "export $n oci-dir" cs export "$n" -o "$d" --format oci-dir || continue
    check "skopeo inspect oci-dir ($n)" skopeo inspect "oci:$d:latest"
    check "skopeo copy oci-dir ($n) to a docker-archive" skopeo copy -q "oci:$d:latest" \
        "docker-archive:$T/sk.tar:x:y"
    rm -f "$T/sk.tar"
    same_files "$n oci-dir" "$d" "$n"
    check "export $n oci-dir again" cs export "$n" -o "$d.2" --format oci-dir
    check "$n oci-dir: same bytes twice" diff -r "$d" "$d.2"
    rm -rf "$d" "$d.2"

    x=$T/$n.docker.tar
    check "export $n docker-archive" cs export "$n" -o "$x" --format docker-archive || continue
    check "skopeo inspect docker-archive ($n)" skopeo inspect "docker-archive:$x"
    check_eq "$n docker-archive: RepoTags" "$(tar -xOf "$x" manifest.json | jq -c '.[0].RepoTags')" \
        "[\"$n:latest\"]"
    rm -rf "$T/fromdocker.oci"
    check "skopeo copy docker-archive ($n) to an OCI layout" skopeo copy -q "docker-archive:$x" \
        "oci:$T/fromdocker.oci:latest"
    [ -d "$T/fromdocker.oci" ] && same_files "$n docker-archive" "$T/fromdocker.oci" "$n"
    rm -rf "$T/fromdocker.oci"
    check "export $n docker-archive again" cs export "$n" -o "$x.2" --format docker-archive
    check "$n docker-archive: same bytes twice" cmp "$x" "$x.2"
    rm -f "$x" "$x.2"
done

# --- import: a rootfs with every kind of entry, from a directory and from a tar ---
r=$T/rootfs
mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/data/sub dir" "$r/sgid" "$r/dev"
head -c 1500000 /dev/urandom >"$r/data/big" # several chunks
: >"$r/data/empty"
printf 'hello\n' >"$r/etc/hello"
ln "$r/etc/hello" "$r/etc/hello.hard"
ln -s /etc/hello "$r/etc/abs-link"
ln -s ../etc/hello "$r/bin/rel-link"
ln -s /nonexistent "$r/bin/dangling"
printf 'x' >"$r/bin/setuid" && chmod 4755 "$r/bin/setuid"
chmod 2775 "$r/sgid"
chmod 1777 "$r/tmp"
mkfifo "$r/data/fifo"
mknod "$r/dev/null" c 1 3
printf 'u' >"$r/data/sub dir/owned by 1000 é" && chown 1000:1001 "$r/data/sub dir/owned by 1000 é"
long=$r/data/$(printf 'd%.0s' {1..60})/$(printf 'f%.0s' {1..120})
mkdir -p "$(dirname "$long")" && printf 'long\n' >"$long"
xattr_want=value
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.cstore", b"value")' "$r/etc/hello" 2>/dev/null ||
    xattr_want=no-xattr-support # the temp dir's filesystem has no user xattrs
find "$r" -mindepth 1 -not -type d -exec touch -h -d @1000000000 {} +
touch -d '2001-02-03 04:05:06.123456789' "$r/data/big"
rootfs_manifest "$r" >"$T/ref-import.txt"
REF[import]=$T/ref-import.txt
tar -C "$r" --xattrs --xattrs-include='*' --format=posix -cf "$T/rootfs.tar" .
for src in dir tar; do
    [ $src = dir ] && path=$r || path=$T/rootfs.tar
    check "import a rootfs $src" cs import "$path" -t "imported:$src" || continue
    check_eq "import $src: one layer" "$(cs inspect "imported:$src" | jq '.layers | length')" 1
    check "export the imported $src image" cs export "imported:$src" -o "$T/imp.oci" --format oci-dir
    same_files "imported $src" "$T/imp.oci" import
    # umoci does not restore xattrs of every kind: read the exported layer instead.
    check_eq "import $src: xattr in the exported layer" "$(python3 - \
        "$(oci_blob "$T/imp.oci" layer0)" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t:
        if m.name.lstrip("./") == "etc/hello":
            print(m.pax_headers.get("SCHILY.xattr.user.cstore", "no-xattr-support"))
PY
)" "$xattr_want"
    rm -rf "$T/imp.oci"
done
check "fsck at the end" cs fsck
finish
