#!/usr/bin/env bash
# bench_build.sh - issue 3's builder benchmarks, cstore against `buildah bud --layers` in the
# same run.
#
#   bash bench/bench_build.sh [RUNS]      (default 5; medians are reported)
#
# Needs a Release build in build/ and the base images of tests/mkbase.sh. Prints a Markdown
# report on stdout (bench/RESULTS-build.md holds the last one recorded).
. "$(dirname "$0")/lib.sh"
runs=${1:-5}
parse=${BENCH_PARSE:-$src/build/bench/bench_parse}
bench_init build
bench_bases

ms() { printf '%.1f' "$(echo "$1 * 1000" | bc -l)"; }

# ---- a 10,000-file context and a 3-stage, 30-instruction Dockerfile (no RUN) ----
ctx=$work/ctx
mkdir -p "$ctx"
for d in $(seq -w 0 99); do
    mkdir -p "$ctx/pkg/p$d"
    for f in $(seq -w 0 99); do
        printf 'package p%s\n// file %s\nconst X%s = %s\n' "$d" "$f" "$f" "$d$f" > "$ctx/pkg/p$d/f$f.go"
    done
done
printf 'module example.com/app\n\ngo 1.19\n' > "$ctx/go.mod"
printf 'package main\nfunc main() {}\n' > "$ctx/main.go"
cat > "$ctx/Dockerfile" <<'DF'
FROM busybox AS deps
ARG VERSION=1.0
ENV GOPATH=/go GOFLAGS=-mod=mod
WORKDIR /src
COPY go.mod ./
LABEL stage=deps
ENV CGO_ENABLED=0
COPY pkg/p00/ ./pkg/p00/
USER root
EXPOSE 8080

FROM busybox AS build
ARG VERSION=1.0
WORKDIR /src
COPY --from=deps /src/go.mod ./
COPY . .
ENV APP_VERSION=${VERSION}
LABEL stage=build
COPY main.go ./cmd/app/main.go
WORKDIR /src/cmd/app
ENV GOOS=linux GOARCH=amd64

FROM scratch
COPY --from=build /src/cmd/app/main.go /app/main.go
COPY --from=build /src/go.mod /app/go.mod
ENV PATH=/app
LABEL org.opencontainers.image.title=app
EXPOSE 8080
USER 65534:65534
WORKDIR /app
ENTRYPOINT ["/app/app"]
CMD ["--serve"]
DF
ninstr=$(grep -cvE '^\s*$' "$ctx/Dockerfile")

"$cstore" --root "$work/cs" load "$bases/busybox.docker.tar" >/dev/null
"$cstore" --root "$work/cs" build --progress quiet -t app "$ctx" >/dev/null
bah pull -q "docker-archive:$bases/busybox.docker.tar" >/dev/null
bah bud --layers --pull-never -q -t app "$ctx" >/dev/null 2>&1
xs=(); ys=()
for i in $(seq "$runs"); do
    xs+=("$(wall "$cstore" --root "$work/cs" build --progress quiet -t app "$ctx")")
    ys+=("$(wall bah bud --layers --pull-never -q -t app "$ctx")")
done
cs_noop=$(printf '%s\n' "${xs[@]}" | median)
bah_noop=$(printf '%s\n' "${ys[@]}" | median)

# one changed file
xs=(); ys=()
for i in $(seq "$runs"); do
    printf '// change %s\n' "$i$RANDOM" >> "$ctx/pkg/p42/f42.go"
    xs+=("$(wall "$cstore" --root "$work/cs" build --progress quiet -t app "$ctx")")
    printf '// change %s\n' "$i$RANDOM" >> "$ctx/pkg/p42/f42.go"
    ys+=("$(wall bah bud --layers --pull-never -q -t app "$ctx")")
done
cs_inc=$(printf '%s\n' "${xs[@]}" | median)
bah_inc=$(printf '%s\n' "${ys[@]}" | median)

echo "# cstore build benchmarks"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "- versions: cstore $(git -C "$src" rev-parse --short HEAD), $(buildah --version); runs: $runs, medians"
echo
echo "## Rebuilds of a 3-stage, $ninstr-instruction Dockerfile over a 10,000-file context (COPY and metadata only)"
echo
echo "| rebuild | cstore build | buildah bud --layers | ratio |"
echo "|---|---|---|---|"
printf '| nothing changed | %s ms | %s ms | 1/%.0f |\n' "$(ms "$cs_noop")" "$(ms "$bah_noop")" "$(echo "$bah_noop / $cs_noop" | bc -l)"
printf '| one context file changed | %s ms | %s ms | 1/%.0f |\n' "$(ms "$cs_inc")" "$(ms "$bah_inc")" "$(echo "$bah_inc / $cs_inc" | bc -l)"
echo

# ---- COPY --from of a 1 GiB file ----
big=$work/big
mkdir -p "$big"
head -c $((1 << 30)) /dev/urandom > "$big/big.bin"
printf 'FROM scratch AS a\nCOPY big.bin /big.bin\n' > "$big/Dockerfile.a"
printf 'FROM scratch AS a\nCOPY big.bin /big.bin\nFROM busybox\nCOPY --from=a /big.bin /copied.bin\n' > "$big/Dockerfile"
"$cstore" --root "$work/cs" build --progress quiet -f "$big/Dockerfile.a" "$big" >/dev/null
xs=(); ch=(); db=()
for i in $(seq "$runs"); do
    c0=$("$cstore" --root "$work/cs" du --json | jq .chunks)
    s0=$(stat -c %s "$work/cs/data.mdb")
    xs+=("$(wall "$cstore" --root "$work/cs" build --no-cache --progress quiet -f "$big/Dockerfile" "$big")")
    ch+=("$(( $("$cstore" --root "$work/cs" du --json | jq .chunks) - c0 ))")
    db+=("$(( $(stat -c %s "$work/cs/data.mdb") - s0 ))")
done
echo "## COPY --from of a 1 GiB file across stages (--no-cache: both COPYs rerun; the context file is stat-cached)"
echo
echo "| | median |"
echo "|---|---|"
echo "| wall time | $(ms "$(printf '%s\n' "${xs[@]}" | median)") ms |"
echo "| chunks written | $(printf '%s\n' "${ch[@]}" | median) |"
echo "| data.mdb growth | $(printf '%s\n' "${db[@]}" | median) bytes |"
echo
echo "## Parse time of a 10,000-line Dockerfile"
echo
echo '```'
"$parse" --lines 10000 --runs "$runs"
echo '```'
