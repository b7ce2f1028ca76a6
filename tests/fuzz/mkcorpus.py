#!/usr/bin/env python3
"""mkcorpus.py - writes the seed corpora under tests/fuzz/corpus/<target>/
(committed; rerun after changing a seed). Deterministic: same bytes each run."""
import gzip, hashlib, io, json, os, shutil, tarfile

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.dirname(os.path.dirname(here))
out = os.path.join(here, "corpus")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def tar(members):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in members:
            i = tarfile.TarInfo(name)
            i.mtime = 1700000000
            if kind == "f":
                i.size = len(data)
                t.addfile(i, io.BytesIO(data))
            elif kind == "d":
                i.type, i.mode = tarfile.DIRTYPE, 0o755
                t.addfile(i)
            elif kind == "l":
                i.type, i.linkname = tarfile.SYMTYPE, data
                t.addfile(i)
            elif kind == "h":
                i.type, i.linkname = tarfile.LNKTYPE, data
                t.addfile(i)
    data = b.getvalue().rstrip(b"\0")  # no record padding: small seeds
    return data + b"\0" * (-len(data) % 512 + 1024)


shutil.rmtree(out, ignore_errors=True)

# Dockerfiles: the examples, and the forms the lexer and parser know.
for n in ("Dockerfile", "Dockerfile.scratch", "Dockerfile.single"):
    with open(os.path.join(src, "examples", "hello-go", n), "rb") as f:
        put("dockerfile", "hello-go-" + n, f.read())
put("dockerfile", "expand", """# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE:-scratch} AS one
ENV FILE=/a/b/c.tar.gz X="q $a" Y='s'
RUN echo ${FILE#*/} ${FILE##*/} ${FILE%.*} ${FILE%%.*} ${FILE/b/x} ${FILE//\\//_}
COPY --chown=${U:+1}:1 --from=one ["a b", "${a:-x}"]
LABEL a="${W}" b=${E:?err}
EXPOSE ${P:-80}/tcp 443
WORKDIR /w/${a}
HEALTHCHECK --interval=30s --retries=3 CMD ["true"]
ONBUILD RUN echo $HOME
""")
put("dockerfile", "heredoc", """FROM busybox
RUN <<EOF
echo ${a/a*a*a/x} "$U"
EOF
COPY <<-'END' /x
\tliteral $a
\tEND
SHELL ["/bin/sh", "-c"]
CMD echo done
""")
put("dockerfile", "escape", "# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo `$a\nUSER 1:1\n")

# .dockerignore files, a NUL, then paths to match.
put("ignore", "basic", "# comment\n*.o\n!keep.o\nbuild/\n**/*.tmp\n/secret\n\0a.o\nkeep.o\nbuild/x/y\nz/w.tmp\nsecret\n")
put("ignore", "classes", "[a-c]*.txt\n[^x]?.log\n\\*star\ndir/**/leaf\n!dir/**/keep\n\0b1.txt\nyy.log\n*star\ndir/a/b/leaf\ndir/keep\n")
put("ignore", "clean", "./a/../b//c/\n**\n!**/*.go\n\0b/c\nx/y.go\n../up\n")

# Layer tars: plain, gzip, with directories, links and a whiteout.
layer = tar([("etc", "d", None), ("etc/hosts", "f", b"127.0.0.1 localhost\n"),
             ("bin", "d", None), ("bin/sh", "f", b"#!fake\n" * 8),
             ("bin/ash", "h", "bin/sh"), ("lib", "l", "usr/lib"),
             ("etc/.wh.old", "f", b"")])
put("ingest", "plain.tar", layer)
put("ingest", "gzip.tar.gz", gzip.compress(layer, mtime=0))
put("ingest", "hardlink-order.tar", tar([("t", "f", b"one"), ("h", "h", "t"), ("t", "f", b"two")]))
put("ingest", "empty.tar", tar([]))


# Loader inputs: a kind byte, then NUL-separated files (see fuzz_load.c).
def sha(b):
    return hashlib.sha256(b).hexdigest()


config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]},
                     "history": [{"created_by": "seed"}]}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": "sha256:" + sha(config), "size": len(config)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "digest": "sha256:" + sha(layer), "size": len(layer)}]}).encode()
index = json.dumps({"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sha(manifest),
     "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "seed:1"}}]}).encode()
put("load", "oci", b"o" + b"\0".join([index, manifest, config, layer]))
nested = json.dumps({"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + sha(index),
     "size": len(index)}]}).encode()
put("load", "oci-nested-index", b"o" + b"\0".join([nested, index, manifest, config, layer]))
dmanifest = json.dumps([{"Config": sha(config) + ".json", "RepoTags": ["seed:latest"],
                         "Layers": [sha(layer) + "/layer.tar"]}]).encode()
put("load", "docker", b"d" + b"\0".join([dmanifest, config, layer]))
put("load", "oci-bad-digest", b"o" + b"\0".join([index.replace(b"sha256:", b"sha256:0"), manifest]))
