#!/usr/bin/env bash
# Land one device call of scripts/gpu_lra.sh here: its rows, logs and checkpoints into the repository, the report
# and the figures regenerated, ready to commit with the call's command (write that to the session's
# results/lra/logs/<date>[-sN]-device-commands.md yourself: it is the one thing this cannot know).
#
#   bash scripts/land_lra_call.sh FILES_AT LOG_NAME      # e.g. /work/.device/3 2026-12-03-call3
#
# FILES_AT: the folder the call's files came back to. It holds lra.tar.gz (and ckpt/), or one folder per sweep
# of the call (a/, b/, ... each with its lra.tar.gz), taken in name order. Each tarball's runs/ is the machine's
# whole run tree at its end, so they are copied in order (the last is the newest state of every folder), a folder
# never over one here that is further along (scripts/land_runs.py: a cold machine's seeded, older copy); its
# logs/ go to results/lra/logs/LOG_NAME/ (LOG_NAME<sub>/ for a sub-folder: 2026-12-03-call3a). The last ckpt/
# with a manifest replaces .ckpt_carry/ (git-ignored; carry it with the next session's first call). A missing or
# unreadable tarball, or a log folder that exists already: one line, exit 2, nothing copied.
# REPO (default: this checkout) is where it lands.
set -eu
die() { echo "land_lra_call: $*" >&2; exit 2; }
[ $# = 2 ] || die "usage: land_lra_call.sh FILES_AT LOG_NAME"
src=$1 name=$2
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=${REPO:-$(cd "$HERE/.." && pwd)}
[ -d "$src" ] || die "$src: no such folder (expected the call's files: lra.tar.gz, or a/lra.tar.gz, b/...)"
mapfile -t tars < <(find "$src" -maxdepth 2 -name lra.tar.gz | sort -V)
[ ${#tars[@]} -gt 0 ] || die "$src: no lra.tar.gz in it or in a folder below it"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -a logs_to=()
for i in "${!tars[@]}"; do
  t=${tars[$i]} sub=$(basename "$(dirname "${tars[$i]}")")
  [ "$(dirname "$t")" = "${src%/}" ] && sub=""
  mkdir -p "$work/$i"
  tar -xzf "$t" -C "$work/$i" 2>/dev/null || die "$t: not a readable tar.gz"
  [ -d "$work/$i/lra/runs" ] && [ -d "$work/$i/lra/logs" ] || die "$t: expected lra/runs and lra/logs in it"
  dest="$REPO/results/lra/logs/$name$sub"
  [ -e "$dest" ] && die "$dest exists already: pick another LOG_NAME"
  logs_to+=("$dest")
done
ckpt=$(find "$src" -maxdepth 3 -path '*ckpt/ckpt.manifest.json' | sort -V | tail -1)
if [ -n "$ckpt" ] && ! why=$(python3 "$HERE/carry_checkpoints.py" verify "$(dirname "$ckpt")" 2>&1 >/dev/null); then
  die "${why#carry_checkpoints: } (to land the rows without them, move $(dirname "$ckpt") aside)"
fi
for i in "${!tars[@]}"; do
  mkdir -p "$REPO/results/lra/runs" "${logs_to[$i]}"
  python3 "$HERE/land_runs.py" "$work/$i/lra/runs" "$REPO/results/lra/runs"  # never over a folder further along
  cp -r "$work/$i/lra/logs/." "${logs_to[$i]}/"
  echo "landed ${tars[$i]} -> results/lra/runs, ${logs_to[$i]#"$REPO"/}"
done
if [ -n "$ckpt" ]; then  # the call's set (possibly empty) replaces the last one: never a stale set
  rm -rf "$REPO/.ckpt_carry" && cp -r "$(dirname "$ckpt")" "$REPO/.ckpt_carry"
  echo "checkpoints of unfinished cells -> .ckpt_carry/ (carry it with the next call): $(grep -c '"path"' "$ckpt") run(s)"
fi
cd "$REPO"
python3 -m lra_wavelet report results/lra/runs --out results/lra/report --include-reduced --reach listops=0.30 \
  --reach text=0.70 > /dev/null
python3 -m lra_wavelet plot results/lra/runs --out results/lra/report --include-reduced > /dev/null
git status --short results/lra 2>/dev/null | sed -n "1,20p" || true
