#!/usr/bin/env bash
# One device call's share of the LRA table: the sweep of GRID (tasks/paper/lra.yaml by default), narrowed to
# TASKS / MODELS / SEEDS, stopped cleanly after LIMIT seconds (SIGTERM: the running cell saves its checkpoint
# and writes `partial` rows; finished cells are skipped when the same command runs again).
#
#   LRA_WAVELET_GIT_SHA=<commit> OUT=$OUT TASKS=listops MODELS=transformer SEEDS="0 1 2" bash scripts/gpu_lra.sh [extra sweep flags]
#
# LRA_WAVELET_GIT_SHA: the commit of the code sent (`git rev-parse --short=12 HEAD` here; commit first): a copied
# working tree keeps the .git it was first made with, so without it the rows name a stale commit ("-dirty").
#
# Runs live in RUNS (default .lra_runs, ignored by git, so it stays on the machine between the calls of one
# warm period), seeded from the committed rows (results/lra/runs) with every run folder the machine does not
# have yet: done cells are skipped, and a second call on the still-warm machine resumes the cell the first
# one stopped in, even if the first call's rows were not unpacked here before it (every call copies this
# working tree, results/lra/runs included, over the machine's; the machine's own folders are newer; so a folder
# mended here by hand during a warm period comes back unmended in the next tarball: mend it after). Rows
# and logs go to $OUT/lra.tar.gz without checkpoints, ready to be unpacked into results/lra/ and committed with
# this command line.
# The checkpoints of cells left unfinished come back beside it where they are small enough (all but ListOps',
# 102.5 MiB; at most CKPT_MIB, 44 MiB, in all): $OUT/ckpt/ckpt.tar.partNN + ckpt.manifest.json
# (scripts/carry_checkpoints.py). CKPT=0 skips them, e.g. in the first of two sweeps of one call, whose second
# packs the same folders again (a call returns 64 MiB at most). Copied here into .ckpt_carry/ (git-ignored, each
# call's set replacing the last) and carried with the next session's first call (carry: [".ckpt_carry", ...]),
# they are put back into the seeded run folders before the sweep, so a cell stopped when a session's machine went
# back resumes in the next session instead of starting from step 0 (ListOps' cells still start again).
# Extra flags (e.g. --set train.lazy_metrics=true) are passed to `sweep`; a reduced budget
# (--set train.max_steps=N) must be the same for every model of a task.
set -u
OUT=${OUT:-out}; LIMIT=${LIMIT:-540}; GRID=${GRID:-tasks/paper/lra.yaml}; RUNS=${RUNS:-.lra_runs}
# DEADLINE (epoch seconds, optional): one end for several sweeps of one call, e.g.
#   export DEADLINE=$(( $(date +%s) + 555 )); CKPT=0 OUT=$OUT/a TASKS=text ... bash scripts/gpu_lra.sh; OUT=$OUT/b TASKS=listops ... bash scripts/gpu_lra.sh
# each sweep then stops at min(LIMIT, what is left); with under 30 s left it trains nothing (its rows still come back)
if [ -n "${DEADLINE:-}" ]; then
  left=$(( DEADLINE - $(date +%s) )); [ "$left" -lt "$LIMIT" ] && LIMIT=$left
fi
SEED_RUNS=${SEED_RUNS:-results/lra/runs}
mkdir -p "$OUT/lra/logs" "$RUNS"
# the committed run folders the machine lacks (a folder it has is its own, newer, state: never overwritten)
if [ -d "$SEED_RUNS" ] && [ "$(cd "$SEED_RUNS" && pwd)" != "$(cd "$RUNS" && pwd)" ]; then
  (cd "$SEED_RUNS" && find . -mindepth 3 -maxdepth 3 -type d) | while IFS= read -r d; do
    [ -d "$RUNS/$d" ] || { mkdir -p "$RUNS/$(dirname "$d")" && rm -rf "$RUNS/$d.seeding" &&
      cp -r "$SEED_RUNS/$d" "$RUNS/$d.seeding" && mv "$RUNS/$d.seeding" "$RUNS/$d"; }
  done
fi
# the checkpoints of unfinished cells carried from an earlier session (only into folders still unfinished here)
# (a set that fails its check is said, in command.txt and the output, and the cells start from step 0, as without it)
if [ -f .ckpt_carry/ckpt.manifest.json ]; then
  python3 scripts/carry_checkpoints.py unpack .ckpt_carry "$RUNS" > "$OUT/lra/logs/ckpt-unpack.txt" 2>&1 ||
    echo "carried checkpoints not used: $(tail -1 "$OUT/lra/logs/ckpt-unpack.txt")" | tee -a "$OUT/lra/logs/command.txt"
fi
# evaluation in groups of 256 (speed only: the same examples, the same config hash; ListOps' 100 validation
# passes are about a third of a run)
args=(--grid "$GRID" --out "$RUNS" --no-progress --set train.eval_batch_size=${EVAL_BATCH:-256})
[ -n "${TASKS:-}" ] && args+=(--tasks $TASKS)
[ -n "${MODELS:-}" ] && args+=(--models $MODELS)
[ -n "${SEEDS:-}" ] && args+=(--seeds $SEEDS)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/lra/logs/device.txt" 2>&1
echo "sweep ${args[*]} $*" > "$OUT/lra/logs/command.txt"
echo "code: ${LRA_WAVELET_GIT_SHA:-not given (rows carry the git metadata of the copy)}" >> "$OUT/lra/logs/command.txt"
echo "started: $(date -u +%FT%TZ)" >> "$OUT/lra/logs/command.txt"
# which stand-in files this machine's Text / Retrieval / Image rows read (data_source=substitute names no version)
{ for d in /usr/share/datasets/fashion-mnist /usr/share/doc/linux-doc-*; do [ -e "$d" ] && echo "$d -> $(readlink -f "$d")"; done
  [ -d .standins ] && find .standins \( -name '*.deb' -o -name '*.whl' \) -type f | sort | xargs -r sha256sum
  python3 -m pip show scattertext 2>/dev/null | grep -E '^(Name|Version|Location):'; } > "$OUT/lra/logs/standins.txt" 2>&1
if [ "$LIMIT" -ge 30 ]; then
  PYTHONUNBUFFERED=1 timeout -s TERM "$LIMIT" python3 -m lra_wavelet sweep "${args[@]}" "$@" \
    > "$OUT/lra/logs/sweep-$(date -u +%Y%m%dT%H%M%S).log" 2>&1
  rc=$?
else
  echo "not run: $LIMIT s left (LIMIT or DEADLINE), under the 30 s a cell needs to start" >> "$OUT/lra/logs/command.txt"; rc=0
fi
echo "sweep exit $rc$([ $rc = 124 ] && echo " (stopped by LIMIT=$LIMIT s)"); ended: $(date -u +%FT%TZ)" | tee -a "$OUT/lra/logs/command.txt"
python3 -m lra_wavelet report "$RUNS" --out "$OUT/lra/report" --include-reduced --reach listops=0.30 --reach text=0.70 > /dev/null 2>&1
[ "${CKPT:-1}" = 0 ] || python3 scripts/carry_checkpoints.py pack "$RUNS" "$OUT/ckpt" --budget-mib "${CKPT_MIB:-44}" \
  > "$OUT/lra/logs/ckpt-pack.txt" 2>&1
mkdir -p "$OUT/lra/runs" && tar -cf - -C "$RUNS" --exclude='*.pt' --exclude='*.tmp' --exclude='lock' . | tar -xf - -C "$OUT/lra/runs"
tar -czf "$OUT/lra.tar.gz" -C "$OUT" --exclude='*.pt' --exclude='*.tmp' --exclude='lock' lra && rm -rf "$OUT/lra"
