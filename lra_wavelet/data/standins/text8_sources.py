"""The text8 stand-in's sources, Debian packages: GCIDE (dict-gcide), the Linux kernel docs' RST sources
(linux-doc-*) and Jane Austen's six novels (r-cran-janeaustenr, read by `rdata.py`).

Each is normalised by the text8 task as text8 was made; here they are only found and read as text.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Optional

from .rdata import read_lazyload

APT_TEXT = "apt-get update && apt-get install -y --no-install-recommends dict-gcide linux-doc-6.1 r-cran-janeaustenr"
AUSTEN_BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")
_GCIDE_PRON = re.compile(r"\\[^\\\n]{0,120}\\")  # \Co*ag"u*late\  (pronunciation / syllables)
_GCIDE_SRC = re.compile(r"\[(?:[^\]\n]*?(?:Webster|WordNet|PJC|Century|Jargon|RFC|Chambers)[^\]\n]*)\]")


def gcide_path(root: Path) -> Optional[Path]:
    p = root / "usr/share/dictd/gcide.dict.dz"
    return p if p.is_file() else None


def linux_doc_files(root: Path) -> list[Path]:
    """English RST / text sources of the newest installed linux-doc-* package (translations left out)."""
    dirs = sorted((root / "usr/share/doc").glob("linux-doc-*/Documentation"),
                  key=lambda d: [int(x) if x.isdigit() else x for x in re.split(r"[.-]", d.parent.name)])
    if not dirs:
        return []
    top = dirs[-1]
    return sorted(p for p in top.rglob("*") if p.is_file() and "translations" not in p.relative_to(top).parts
                  and re.search(r"\.(rst|txt)(\.gz)?$", p.name))


def austen_path(root: Path) -> Optional[Path]:
    for lib in ("usr/lib/R/site-library", "usr/local/lib/R/site-library", "usr/lib/R/library"):
        p = root / lib / "janeaustenr/data/Rdata.rdb"
        if p.is_file():
            return p
    return None


def read_text(p: Path) -> str:
    raw = gzip.decompress(p.read_bytes()) if p.name.endswith((".gz", ".dz")) else p.read_bytes()
    return raw.decode("utf-8", errors="replace")


def gcide_text(p: Path) -> str:
    """The dictionary without pronunciation keys and source tags ('[1913 Webster]'), which are not prose."""
    return _GCIDE_SRC.sub(" ", _GCIDE_PRON.sub(" ", read_text(p)))


def austen_texts(p: Path) -> dict[str, str]:
    books = read_lazyload(p)
    return {k: "\n".join(s or "" for s in books[k]) for k in AUSTEN_BOOKS if k in books}
