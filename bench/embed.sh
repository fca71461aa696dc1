#!/usr/bin/env bash
# Benchmark of the embed stage (features, PCA, neighbours, findings, t-SNE map) on the real
# CIFAR-10 from ../shared/data, split by step, as medians of RUNS runs.
#
#   bench/embed.sh [RUNS]        (default 3)
#
# Each run forces embed (--force=embed) on a cached ingest with the feature store deleted, so
# every vector is computed (the cold case). Numbers come from the tool's own run.json. Not a
# test: it never fails on a slow machine.
set -euo pipefail

RUNS=${1:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
tarball=${CIFAR_TARBALL:-$here/../shared/data/cifar10-jpg.tar.gz}
bench=${BENCH_DIR:-/tmp/aldente-bench-embed}
data=$bench/cifar10
out=$bench/out

[ -f "$tarball" ] || { echo "no CIFAR-10 tarball at $tarball (set CIFAR_TARBALL)" >&2; exit 1; }
cd "$here"
cargo build --release --quiet --bin aldente
bin=$here/target/release/aldente
if [ ! -d "$data" ]; then
  mkdir -p "$data"
  tar -xzf "$tarball" -C "$data"
fi
"$bin" report "$data" --out "$out" --quiet

field() { grep -o "\"$1\": [0-9.e-]*" "$out/run.json" | head -1 | awk '{print $2}'; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

declare -A samples
for run in $(seq 1 "$RUNS"); do
  rm -f "$out/cache/embed/features.bin"
  "$bin" report "$data" --out "$out" --quiet --force=embed
  for key in features_seconds pca_seconds neighbours_seconds findings_seconds map_seconds; do
    samples[$key]+="$(field $key) "
  done
  total=$(grep -A3 '"name": "embed"' "$out/run.json" | grep -o '"seconds": [0-9.]*' | awk '{print $2}')
  samples[total]+="$total "
  echo "run $run: embed ${total}s (features computed: $(field features_computed))"
done
for key in features_seconds pca_seconds neighbours_seconds findings_seconds map_seconds total; do
  printf '%-20s median %6.2fs  (%s)\n' "$key" "$(echo ${samples[$key]} | tr ' ' '\n' | median)" "${samples[$key]}"
done
echo "report.html: $(stat -c %s "$out/report.html") bytes"
