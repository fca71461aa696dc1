#!/usr/bin/env bash
# Scores report.json files against the public CIFAR-10 annotations (half of them) in
# ../shared/data/truth: duplicate recall train/test and test/test, label-error hits, and
# contact sheets of what was missed and of unannotated links. What is counted is described
# at the top of examples/score_truth.rs. A measuring tool, not a test.
#
#   bench/score_truth.sh REPORT.json [OTHER.json] [flags]
#
# Defaults (override with flags, which are passed on):
#   --truth   $TRUTH, default ../shared/data/truth next to the project
#   --data    $CIFAR_DIR, default /tmp/cifar10 (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg),
#             used only when it exists
#   --sheets  $SHEETS, default /tmp/score-truth-sheets (PNG + .txt index per sheet)
# Useful flags: --probe K (for each missed copy, align its K most similar train images by
# descriptor with the tool's own check, straight and mirrored; 0 = all train images, slow),
# --sample N and --seed S (the unannotated sample), --threshold T (default 0.09, as the
# tool's dedup.near_threshold).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
truth=${TRUTH:-$here/../shared/data/truth}
data=${CIFAR_DIR:-/tmp/cifar10}
sheets=${SHEETS:-/tmp/score-truth-sheets}

(cd "$here" && cargo build --release --quiet --example score_truth)
defaults=(--truth "$truth")
if [ -d "$data/train" ] && [ -d "$data/test" ]; then
  defaults+=(--data "$data" --sheets "$sheets")
fi
exec "$here/target/release/examples/score_truth" "${defaults[@]}" "$@"
