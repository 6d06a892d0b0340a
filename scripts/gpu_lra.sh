#!/usr/bin/env bash
# LRA side by side on one GPU: every LRA model on ListOps (generated), Image and Pathfinder-32 (generated),
# the tasks' reference configurations (tasks/<task>.yaml) cut to a fixed step budget, all runs in parallel.
#
#   PREP=<folder with image/ from `prepare --export`>  OUT=<output folder>  bash scripts/gpu_lra.sh
#
# Measured on one H200 (2026-11-28): with all 18 runs at once the GPU and its 16 CPU cores are
# oversubscribed — in 390 s the runs reached only 310-2,140 steps (Image fastest, ListOps/Pathfinder
# slowest), so the default budgets below do not finish in one 10-minute call; use MODELS / fewer tasks
# per call, or a longer LIMIT.
set -u
OUT=${OUT:-out}; PREP=${PREP:-.carry_lra}; LIMIT=${LIMIT:-420}; DEVICE=${DEVICE:-cuda}; SEED=${SEED:-0}
MODELS=${MODELS:-"transformer fnet wavspa gpt wavelet wavelet-learnable"}
declare -A STEPS=([listops]=${LISTOPS_STEPS:-1500} [image]=${IMAGE_STEPS:-3000} [pathfinder]=${PF_STEPS:-3000})
declare -A EVAL=([listops]=250 [image]=500 [pathfinder]=500)
declare -A EXTRA=([listops]="" [image]="--set task.prepared=$PREP/image" [pathfinder]="--set task.gen_total=${PF_TOTAL:-20000}")
mkdir -p "$OUT/logs"
python3 -m lra_wavelet prepare --task listops > "$OUT/logs/prepare-listops.log" 2>&1 &
python3 -m lra_wavelet prepare --task pathfinder ${EXTRA[pathfinder]} > "$OUT/logs/prepare-pathfinder.log" 2>&1 &
wait
for t in listops image pathfinder; do
  for m in $MODELS; do
    timeout -s TERM "$LIMIT" python3 -m lra_wavelet run --task $t --model $m --seed "$SEED" --device "$DEVICE" \
      --out "$OUT/runs" --no-progress --max-steps "${STEPS[$t]}" --set train.checkpoint_every=0 \
      --set "train.eval_every=${EVAL[$t]}" ${EXTRA[$t]} \
      > "$OUT/logs/$t-$m.log" 2>&1 &
  done
done
wait
python3 -m lra_wavelet report "$OUT/runs" --out "$OUT/report" --table lra > /dev/null
tail -n 2 "$OUT"/logs/*.log
