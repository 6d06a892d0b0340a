#!/usr/bin/env bash
# The offline stand-ins of Image (Fashion-MNIST) and Retrieval (the Linux kernel documentation) come from Debian
# packages. A machine that reaches no package registry (the GPU machines) gets them carried:
#
#   bash scripts/standin_debs.sh fetch [image|retrieval ...]    # here: the .deb files into .debs/ (git-ignored)
#   bash scripts/standin_debs.sh install                        # there: unpack every .debs/*.deb
#
# `install` unpacks into /tmp/standins (never over /) and links the data folders to the paths the tasks read
# (/usr/share/datasets/fashion-mnist, /usr/share/doc/linux-doc-*), so configs and cache keys stay the same.
# Sizes: dataset-fashion-mnist 31 MB, linux-doc-6.1 37 MB: carry one per device call (64 MiB a call).
set -eu
cd "$(dirname "$0")/.."
declare -A PKG=([image]=dataset-fashion-mnist [retrieval]=linux-doc-6.1)
case "${1:-}" in
  fetch)
    shift
    mkdir -p .debs
    for t in "${@:-image retrieval}"; do
      for name in $t; do
        [ -n "${PKG[$name]:-}" ] || { echo "unknown stand-in '$name': expected image or retrieval" >&2; exit 2; }
        (cd .debs && apt-get download "${PKG[$name]}")
      done
    done
    ls -la .debs ;;
  install)
    ls .debs/*.deb > /dev/null 2>&1 || { echo ".debs/*.deb: nothing to install (carry .debs)" >&2; exit 2; }
    for f in .debs/*.deb; do dpkg -x "$f" /tmp/standins; done
    for d in /tmp/standins/usr/share/datasets/* /tmp/standins/usr/share/doc/linux-doc-*; do
      [ -e "$d" ] || continue
      target=/usr/share/${d#/tmp/standins/usr/share/}
      mkdir -p "$(dirname "$target")"
      [ -e "$target" ] || ln -s "$d" "$target"
      echo "linked $target"
    done ;;
  *) echo "usage: $0 fetch [image|retrieval ...] | install" >&2; exit 2 ;;
esac
