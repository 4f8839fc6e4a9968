"""A set of strings (output keys, source paths) held as 64-bit hashes, with an int per key.

A 1M-file job asks "is this output done?", "is this path a source file?" and "does
another file write here too?" of a million strings.  A Python set of them costs
about 100 bytes a key (the str, its slot); here a key costs 16 bytes (its hash and
its value in two sorted numpy arrays), and a lookup is a binary search.  Keys added
later sit in a small dict first and are merged in bulk.

The hash is Python's own ``hash(str)``: SipHash with a per-process random key, so
the set lives in one process only (never written anywhere).  Two different keys
share a hash with probability 2**-64 per pair: for a million done outputs, a
pending one is taken for done about once in 2e13 jobs.
"""
from __future__ import annotations

from array import array
from itertools import islice
from typing import Iterable

import numpy as np

NONE = -1  # the value of a key added without one
MERGE_AT = 1 << 14  # keys in the dict before they join the arrays (about 100 bytes each)


class KeySet:
    def __init__(self, keys: Iterable[str] = ()) -> None:
        hashes = array("q", (hash(k) for k in keys))  # grows by an eighth, not double
        self._hashes = np.unique(np.frombuffer(hashes, dtype=np.int64)) if hashes else _EMPTY
        self._values: np.ndarray | None = None  # None: every value is NONE (a plain set)
        self._recent: dict[int, int] = {}  # hash -> value, newer than the arrays

    @classmethod
    def of(cls, items: Iterable[tuple[str, int]]) -> KeySet:
        """(key, value) pairs in bulk, the last value of a key counting: 16 bytes a pair while
        they come (two arrays), where ``add`` one by one holds a dict entry each until merged."""
        hashes, values = array("q"), array("q")
        for key, value in items:
            hashes.append(hash(key))
            values.append(value)
        made = cls()
        if not hashes:
            return made
        h = np.frombuffer(hashes, dtype=np.int64)
        order = np.argsort(h, kind="stable")  # equal hashes keep their order: the last is last
        ordered = h[order]
        order = order[np.append(ordered[1:] != ordered[:-1], True)]  # each hash's last
        del ordered
        made._hashes, made._values = h[order], np.frombuffer(values, dtype=np.int64)[order]
        return made

    def among(self, keys: Iterable[str]) -> KeySet:
        """The keys of this set that ``keys`` holds too, with their values (``keys`` is read
        once, in batches: a folder listing of a million files costs no list of them)."""
        self._merge()
        kept = np.zeros(len(self._hashes), dtype=bool)
        it = iter(keys)
        while batch := array("q", (hash(k) for k in islice(it, 4096))):
            h = np.frombuffer(batch, dtype=np.int64)
            i = np.minimum(np.searchsorted(self._hashes, h), max(len(self._hashes) - 1, 0))
            if len(self._hashes):
                kept[i[self._hashes[i] == h]] = True
        made = KeySet()
        made._hashes = self._hashes[kept]
        made._values = None if self._values is None else self._values[kept]
        return made

    def add(self, key: str, value: int = NONE) -> None:
        """Add ``key`` (or set its value: the last one added counts)."""
        self._recent[hash(key)] = value
        if len(self._recent) >= MERGE_AT:
            self._merge()

    def __contains__(self, key: object) -> bool:
        return self._find(hash(key)) is not None

    def get(self, key: str) -> int | None:
        """The value added with ``key`` (``NONE`` if it had none); None if absent."""
        return self._find(hash(key))

    def __len__(self) -> int:
        self._merge()
        return len(self._hashes)

    def _find(self, h: int) -> int | None:
        value = self._recent.get(h)
        if value is not None:
            return value
        i = int(np.searchsorted(self._hashes, h))
        if i < len(self._hashes) and self._hashes[i] == h:
            return NONE if self._values is None else int(self._values[i])
        return None

    def _merge(self) -> None:
        if not self._recent:
            return
        new = np.fromiter(self._recent.keys(), dtype=np.int64, count=len(self._recent))
        values = np.fromiter(self._recent.values(), dtype=np.int64, count=len(self._recent))
        self._recent = {}
        order = np.argsort(new)
        new, values = new[order], values[order]
        # Into the sorted arrays where each belongs: a key already there takes its new value;
        # one new array per merge (np.insert), where sorting old and new together made four
        at = np.searchsorted(self._hashes, new)
        there = np.zeros(len(new), dtype=bool)
        inside = at < len(self._hashes)
        there[inside] = self._hashes[at[inside]] == new[inside]
        if self._values is None and (values != NONE).any():
            self._values = np.full(len(self._hashes), NONE, dtype=np.int64)
        if self._values is not None:
            self._values[at[there]] = values[there]
            self._values = np.insert(self._values, at[~there], values[~there])
        self._hashes = np.insert(self._hashes, at[~there], new[~there])


def duplicates_of(hashes: array) -> set[int]:
    """The hashes (of ``hash(key)``, an ``array("q")``, sorted here in place) seen more than
    once: the same key twice, or (rarely) two keys that share a hash, so compare the strings
    of those few before calling them one."""
    if not hashes:
        return set()
    a = np.frombuffer(hashes, dtype=np.int64)
    a.sort()
    return set(a[1:][a[1:] == a[:-1]].tolist())


_EMPTY = np.empty(0, dtype=np.int64)
