#!/usr/bin/env bash
# The prepared GPU check (issues 9 and 10): every figure this repository cannot measure on the CPU
# software adapter, in one bounded script for a device-tool run (one try costs minutes of a 15-minute
# budget, so nothing here is interactive and every step has a timeout; a failing step does not stop
# the rest). Prepare here:
#   ../shared/tools/gpu-carry.sh && deno install
#   mkdir -p .gpu/models/small-eagle3-reference && cp -r ../shared/models/small .gpu/models/ &&
#   cp ../shared/models/small-eagle3-reference/{config.json,model.safetensors} .gpu/models/small-eagle3-reference/
# (.gpu is ~31 MB and small ~31 MB: over the device tool's 64 MiB per-call carry limit with the draft, so
# carry .gpu + node_modules first, then the models in a second call while the machine is warm — ignored
# paths already there are kept between calls). Then run with carry
# [".gpu", "node_modules"] and the command:
#   source .gpu/env.sh && bash benchmarks/gpu_check.sh
# Results go to $OUT (the device tool brings that folder back) or /tmp/gpu_check.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
SMALL=${SMALL:-.gpu/models/small}
REF=${REF:-.gpu/models/small-eagle3-reference}
mkdir -p "$OUT"
D="deno run --cached-only -A"
step() { # step NAME SECONDS CMD...
  local name=$1 secs=$2
  shift 2
  echo "== $name (≤ ${secs}s)"
  timeout "$secs" "$@" >"$OUT/$name.txt" 2>&1
  echo "   exit $? · $(tail -n 1 "$OUT/$name.txt" | cut -c1-160)"
}
step adapter 30 $D benchmarks/bench.ts --quick --only dispatch
step kernels 90 $D benchmarks/bench.ts --quick --only kernels --json "$OUT/kernels.json"
step decode 120 $D benchmarks/bench.ts --only decode --model models/tiny --model "$SMALL" --json "$OUT/decode.json"
step spec 120 $D benchmarks/bench.ts --only spec --model "$SMALL" --draft "$REF" --json "$OUT/spec.json"
step train 60 $D benchmarks/train_bench.ts --seq-len 128,256 --reps 3 --model "$SMALL"
step gto 90 $D benchmarks/gto_bench.ts --seq-len 128 --groups 16 --reps 2
step accept_small 150 $D benchmarks/accept.ts --target "$SMALL" --draft "$REF" --tree 60,7,10 --n 5 \
  --temperature 0 --max-tokens 128 --markdown "$OUT/accept_small.md"
echo "== done: $OUT"
