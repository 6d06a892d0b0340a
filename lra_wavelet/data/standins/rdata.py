"""A reader of R's data files: XDR serialisation (formats 2 and 3) and lazy-load databases (.rdb + .rdx).

Enough for packaged data sets (the text8 stand-in reads Jane Austen's novels from Debian's
r-cran-janeaustenr this way, without R): vectors, lists, pairlists, attributes, strings.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np


class RList(list):
    """An R vector read back: a list with its R attributes (names, class, ...) in `.attrs`."""

    attrs: dict = {}


_PAIRLISTS = {2, 3, 5, 6, 17, 239, 240}  # LISTSXP CLOSXP PROMSXP LANGSXP DOTSXP ATTRLANGSXP ATTRLISTSXP


class RReader:
    """R's XDR serialisation (formats 2 and 3) for data: vectors, lists, pairlists, attributes, strings.

    Enough for packaged data sets; code objects (byte code, closures' bodies beyond pairlists) are not needed.
    """

    def __init__(self, data: bytes):
        self.b, self.i, self.refs = data, 0, []

    def _int(self) -> int:
        v = struct.unpack_from(">i", self.b, self.i)[0]
        self.i += 4
        return v

    def _take(self, n: int) -> bytes:
        v = self.b[self.i: self.i + n]
        self.i += n
        return v

    def read(self):
        if self._take(2) != b"X\n":
            raise ValueError("not an R XDR serialisation (expected 'X\\n')")
        version = self._int()
        self._int(), self._int()  # writer's R version, oldest R that reads it
        if version == 3:
            self._take(self._int())  # native encoding name
        return self._item()

    def _len(self) -> int:
        n = self._int()
        return (self._int() << 32) + self._int() if n == -1 else n

    def _item(self):
        flags = self._int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t in (254, 253, 252, 251, 250, 242, 241):  # NULL, the global/base/empty environments, markers
            return None
        if t == 255:  # a back-reference to a symbol or environment read before
            return self.refs[(flags >> 8 or self._int()) - 1]
        if t in (247, 248, 249):  # persistent name, package, namespace: a string vector
            self._int()
            v = [self._item() for _ in range(self._int())]
            self.refs.append(v)
            return v
        if t == 1:  # symbol
            v = self._item()
            self.refs.append(v)
            return v
        if t == 4:  # environment: locked flag, enclosure, frame, hash table, attributes
            self.refs.append(None)
            self._int()
            for _ in range(4):
                self._item()
            return None
        if t in _PAIRLISTS:  # the whole chain, iteratively: {tag or position: value}
            out, pos = {}, 0
            while t in _PAIRLISTS:
                if has_attr:
                    self._item()
                tag = self._item() if has_tag else None
                out[tag if tag is not None else pos] = self._item()
                pos += 1
                flags = self._int()
                t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            self.i -= 4
            self._item()  # the terminating NULL
            return out
        if t == 9:  # CHARSXP; bit 2 of the levels marks latin-1
            n = self._int()
            return None if n == -1 else self._take(n).decode("latin-1" if (flags >> 12) & 4 else "utf-8", "replace")
        if t in (10, 13):  # logical, integer
            v = RList(np.frombuffer(self._take(4 * self._len()), ">i4").tolist())
        elif t == 14:  # double
            v = RList(np.frombuffer(self._take(8 * self._len()), ">f8").tolist())
        elif t == 15:  # complex, as pairs of doubles
            v = RList(np.frombuffer(self._take(16 * self._len()), ">f8").tolist())
        elif t == 24:  # raw
            v = RList(self._take(self._len()))
        elif t in (16, 19, 20):  # character, list, expression
            v = RList(self._item() for _ in range(self._len()))
        elif t == 25:  # S4 object: only attributes
            v = RList()
        else:
            raise ValueError(f"unsupported R object type {t}")
        if has_attr:
            v.attrs = self._item()
        return v


def _r_blob(blob: bytes) -> bytes:
    """A lazy-load DB record: 4-byte big-endian length, then zlib (or a type byte Z/2/X/0 and the data)."""
    body = blob[4:]
    if body[:1] == b"x":  # zlib header
        return zlib.decompress(body)
    kind, body = body[:1], body[1:]
    if kind == b"Z":
        return zlib.decompress(body)
    if kind == b"2":
        import bz2

        return bz2.decompress(body)
    if kind == b"X":
        import lzma

        return lzma.decompress(body)
    if kind == b"0":
        return body
    raise ValueError(f"unknown R lazy-load compression {kind!r}")


def read_lazyload(rdb: Path) -> dict:
    """Every object of an R lazy-load database (<name>.rdb + <name>.rdx) as {name: value}."""
    rdx = RReader(gzip.decompress(rdb.with_suffix(".rdx").read_bytes())).read()
    index = dict(zip(rdx.attrs["names"], rdx))
    data = rdb.read_bytes()
    return {name: RReader(_r_blob(data[int(off): int(off) + int(n)])).read()
            for name, (off, n) in zip(index["variables"].attrs["names"], index["variables"])}
