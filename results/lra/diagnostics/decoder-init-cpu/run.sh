#!/bin/bash
# usage: run.sh NAME MODEL [extra --set ...]
name=$1; model=$2; shift 2; mkdir -p ${OUT:-runs}
OMP_NUM_THREADS=1 python -m lra_wavelet run --task text-1000 --model $model --no-progress --out ${OUT:-runs} \
  --set task.sub_train=4000 --set task.sub_val=500 --set task.sub_test=500 \
  --set model.n_layers=2 --set model.d_model=64 --set model.n_heads=4 --set model.d_ff=128 --set model.head_dim=128 \
  --set model.dropout=0.0 --set model.attn_dropout=0.0 \
  --set train.batch_size=32 --set train.max_steps=${STEPS:-400} --set train.lr=1e-3 --set train.schedule=cosine \
  --set train.warmup_steps=40 --set train.eval_every=50 --set train.weight_decay=0.0 --set train.compile=false "$@" > ${OUT:-runs}/$name.log 2>&1
echo "$name done: $(tail -1 ${OUT:-runs}/$name.log)"
