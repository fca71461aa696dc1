#!/usr/bin/env bash
# Inference throughput of `aldente --model` against onnxruntime from PyPI on the same model,
# images and machine, side by side: rounds alternate between the two so that load on a
# shared machine hits both alike. Prints each round and the medians.
#
#   bench/model_throughput.sh MODEL.onnx FOLDER [ROUNDS]
#
# FOLDER: an image-classification folder (e.g. CIFAR-10's test split, /tmp/cifar10/test).
# aldente's figure is its own count from run.json: feature vectors computed / seconds spent
# computing them (tensor preparation included), with the per-model feature cache removed
# before each round. onnxruntime's is session.run over pre-decoded arrays, batch 256, two
# threads (bench/onnxruntime_rate.py; needs `pip install onnxruntime pillow numpy`).
# Environment: ALDENTE_BIN (default: target/release/aldente, built if missing), THREADS (2),
# RUNTIME (tract, or onnxruntime: needs a binary built with --features onnxruntime, and
# ORT_DYLIB_PATH; default: the library of the onnxruntime Python package).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
model=$1
folder=$2
rounds=${3:-3}
threads=${THREADS:-2}
bin=${ALDENTE_BIN:-$here/target/release/aldente}
if [ -z "${ALDENTE_BIN:-}" ]; then (cd "$here" && cargo build --release --quiet); fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
runtime=${RUNTIME:-tract}
if [ "$runtime" = onnxruntime ] && [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$(python3 -c "import onnxruntime, glob, os; print(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so*'))[0])")
  export ORT_DYLIB_PATH
fi
printf '[embed]\nmodel_runtime = "%s"\n' "$runtime" > "$out/settings.toml"
# One run to ingest and cache everything but the model's vectors.
"$bin" report "$folder" --out "$out/r" --model "$model" --jobs "$threads" --config "$out/settings.toml" -q
ours=()
theirs=()
for round in $(seq 1 "$rounds"); do
  rm -f "$out"/r/cache/embed/features-*.bin
  "$bin" report "$folder" --out "$out/r" --model "$model" --jobs "$threads" --config "$out/settings.toml" --force=embed -q
  rate=$(python3 -c "
import json,sys
r=json.load(open('$out/r/run.json'))
e=[s for s in r['stages'] if s['name']=='embed'][0]['embed']
print(f\"{e['features_computed']/e['features_seconds']:.1f}\")")
  ours+=("$rate")
  line=$(python3 "$here/bench/onnxruntime_rate.py" "$model" "$folder" --threads "$threads")
  theirs+=("${line##*rate=}")
  echo "round $round: aldente ($runtime) $rate images/s, $line"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
a=$(median "${ours[@]}")
b=$(median "${theirs[@]}")
echo "median: aldente ($runtime) $a images/s, onnxruntime $b images/s, ratio $(python3 -c "print(f'{$a/$b:.2f}')")"
