#!/usr/bin/env bash
# Benchmark of aldente on the real CIFAR-10 (60,000 JPEGs) from ../shared/data.
#
#   bench/cifar10.sh [RUNS]        (default 5 runs of each case; medians are printed)
#   ALDENTE_BIN=/tmp/old/aldente bench/cifar10.sh 3    (measure another build; no cargo build)
#
# Cases, each on a fresh copy of the dataset outside the project (in $BENCH_DIR, default
# /tmp/aldente-bench):
#   cold     no cache: ingest images/s, dedup and embed stage times, wall time, peak memory
#   warm     rerun with nothing changed: wall time (target: under 5% of cold), decodes (0)
#   relabel  100 files moved to another class folder: wall time, decodes (target: 0)
#   change   the pixels of 100 files changed: wall time, decodes (target: exactly 100)
#   add      100 new pictures added: wall time, decodes (target: exactly 100)
#   delete   100 files taken out of the dataset: wall time, decodes (target: 0)
# Timings come from the tool's own run.json (total wall time of the command as measured by
# the process, ingest stage time) and /usr/bin/time-free: peak RSS is read from /proc by
# the tool itself. Nothing here is a test; it never fails on a slow machine.
set -euo pipefail

RUNS=${1:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
tarball=${CIFAR_TARBALL:-$here/../shared/data/cifar10-jpg.tar.gz}
bench=${BENCH_DIR:-/tmp/aldente-bench}
data=$bench/cifar10
out=$bench/out

[ -f "$tarball" ] || { echo "no CIFAR-10 tarball at $tarball (set CIFAR_TARBALL)" >&2; exit 1; }
cd "$here"
# ALDENTE_BIN / MUTATE_BIN measure another build (say, the previous commit's) the same way.
if [ -z "${ALDENTE_BIN:-}" ]; then
  cargo build --release --quiet --bin aldente --example bench_mutate
fi
bin=${ALDENTE_BIN:-$here/target/release/aldente}
mutate=${MUTATE_BIN:-$here/target/release/examples/bench_mutate}

fresh_copy() {
  rm -rf "$data" && mkdir -p "$data"
  tar -xzf "$tarball" -C "$data"
  # Age the files as if the dataset had been there for a while (see cache/statcache.rs).
  find "$data" -type f -exec touch -d '-1 hour' {} +
}

field() {  # field FILE PYTHON-EXPRESSION-ON-j
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"
}

stage() {  # stage NAME -> that stage's seconds in the last run
  field "$out/run.json" "[s['seconds'] for s in j['stages'] if s['name'] == '$1'][0]"
}

run() {  # run -> prints "total_seconds ingest_seconds decoded peak_mb"
  # Flush the previous case's writes first (a cold run leaves ~190 MB of cache to write
  # back, which otherwise lands on the next case's clock), as hyperfine --prepare 'sync'.
  sync
  "$bin" report "$data" --out "$out" --quiet
  field "$out/run.json" "'%.3f %.3f %d %.0f' % (j['total_seconds'], j['stages'][0]['seconds'], j['stages'][0]['ingest']['decoded'], (j['peak_rss_bytes'] or 0)/2**20)"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "preparing a fresh copy of CIFAR-10 in $data ..."
fresh_copy
n=$(find "$data" -type f -name '*.jpg' | wc -l)
echo "$n images; $RUNS runs per case; machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

declare -a cold_dedup cold_embed cold_total cold_ingest cold_rate cold_mem warm_total warm_dec relabel_total relabel_dec change_total change_dec add_total add_dec delete_total delete_dec
for i in $(seq 1 "$RUNS"); do
  rm -rf "$out"
  read -r t ing dec mem < <(run)
  cold_total+=("$t"); cold_ingest+=("$ing"); cold_mem+=("$mem")
  cold_dedup+=("$(stage dedup)"); cold_embed+=("$(stage embed)")
  cold_rate+=("$(python3 -c "print(round($dec/$ing))")")
  read -r t ing dec mem < <(run)
  warm_total+=("$t"); warm_dec+=("$dec")
  # Alternate direction so the class sizes stay balanced over the runs.
  if (( i % 2 )); then "$mutate" relabel "$data" train/cat train/dog 100
  else "$mutate" relabel "$data" train/dog train/cat 100; fi
  read -r t ing dec mem < <(run)
  relabel_total+=("$t"); relabel_dec+=("$dec")
  "$mutate" repaint "$data" train/horse 100 "$i"
  read -r t ing dec mem < <(run)
  change_total+=("$t"); change_dec+=("$dec")
  "$mutate" add "$data" train/ship 100 "$i"
  read -r t ing dec mem < <(run)
  add_total+=("$t"); add_dec+=("$dec")
  "$mutate" remove "$data" train/truck 100 "$bench/removed-$i"
  read -r t ing dec mem < <(run)
  delete_total+=("$t"); delete_dec+=("$dec")
  echo "run $i: cold ${cold_total[-1]}s (ingest ${cold_ingest[-1]}s, ${cold_rate[-1]} images/s, dedup ${cold_dedup[-1]}s, embed ${cold_embed[-1]}s, ${cold_mem[-1]} MiB) | warm ${warm_total[-1]}s, ${warm_dec[-1]} decoded | relabel ${relabel_total[-1]}s, ${relabel_dec[-1]} decoded | change ${change_total[-1]}s, ${change_dec[-1]} decoded | add ${add_total[-1]}s, ${add_dec[-1]} decoded | delete ${delete_total[-1]}s, ${delete_dec[-1]} decoded"
done

m() { printf '%s\n' "$@" | median; }
pct() { python3 -c "print(round(100*$1/$ct,1))"; }  # pct SECONDS -> percent of the cold median
ct=$(m "${cold_total[@]}"); wt=$(m "${warm_total[@]}")
echo
echo "medians over $RUNS runs:"
echo "  cold    : $ct s total; ingest $(m "${cold_ingest[@]}") s = $(m "${cold_rate[@]}") images/s; peak RSS $(m "${cold_mem[@]}") MiB"
echo "  stages  : dedup $(m "${cold_dedup[@]}") s, embed $(m "${cold_embed[@]}") s (cold run)"
echo "  warm    : $wt s total ($(python3 -c "print(round(100*$wt/$ct,1))")% of cold); decoded $(m "${warm_dec[@]}")"
echo "  relabel : $(m "${relabel_total[@]}") s total ($(pct "$(m "${relabel_total[@]}")")% of cold); decoded $(m "${relabel_dec[@]}")"
echo "  change  : $(m "${change_total[@]}") s total ($(pct "$(m "${change_total[@]}")")% of cold); decoded $(m "${change_dec[@]}")"
echo "  add     : $(m "${add_total[@]}") s total ($(pct "$(m "${add_total[@]}")")% of cold); decoded $(m "${add_dec[@]}")"
echo "  delete  : $(m "${delete_total[@]}") s total ($(pct "$(m "${delete_total[@]}")")% of cold); decoded $(m "${delete_dec[@]}")"
