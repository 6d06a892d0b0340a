#!/usr/bin/env bash
# Pre-training evidence on one GPU (DESIGN §7.2): GPT baseline vs WaveletGPT at the paper's size
# (tasks/<corpus>.yaml: 10 layers, d_model 128, FFN 512, 8 heads, context 512), all runs in parallel
# (the model is small; the GPU is shared by the processes).
#
#   PREP=<folder of `prepare --export` outputs: text8/ music/ audio/>  OUT=<output folder>  bash scripts/gpu_pretrain.sh
#
# Each run stops cleanly (SIGTERM -> checkpoint + partial rows) if it outlives LIMIT seconds.
set -u
OUT=${OUT:-out}; PREP=${PREP:-.carry}; STEPS=${STEPS:-2500}; LIMIT=${LIMIT:-540}; DEVICE=${DEVICE:-cuda}
SEEDS=${SEEDS:-"0 1"}
mkdir -p "$OUT/logs"
common=(--device "$DEVICE" --out "$OUT/runs" --no-progress --set "train.max_steps=$STEPS"
        --set train.eval_every=125 --set train.eval_batches=8 --set train.checkpoint_every=500)
launch() {  # task model seed
  timeout -s TERM "$LIMIT" python3 -m lra_wavelet run --task "$1" --model "$2" --seed "$3" "${common[@]}" \
    --set "task.prepared=$PREP/$1" > "$OUT/logs/$1-$2-s$3.log" 2>&1 &
}
for s in $SEEDS; do for m in gpt wavelet; do for t in text8 music audio; do launch $t $m $s; done; done; done
launch text8 wavelet-learnable 0
launch text8 wavelet-ema 0
wait
python3 -m lra_wavelet report "$OUT/runs" --out "$OUT/report" --table pretrain ablation > /dev/null
tail -n 3 "$OUT"/logs/*.log
