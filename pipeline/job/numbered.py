"""Units that are numbered, not found (``generate:``): planned as a range, never listed.

A folder's files must be listed to be known; a generator's images are known from their
count, ``000000.png`` up.  So the plan holds the range (``Numbered``, a drop-in for a
``Listing``), and the checks that a listed source needs per file are made once per range:
on its first and last names (every other name has the shape of one of them: the same
folder, the same suffix, as many digits as one), and, for writing one output twice, by
asking of each *listed* unit whether a range claims its name (``Claims``).  ``validate``
therefore answers in the same time at a count of ten or a million.
"""
from __future__ import annotations

from pathlib import PurePath
from typing import Callable, Iterator


class Numbered:
    """A numbered source's files, as a ``Listing`` holds a folder's: (folder, name) in order."""

    def __init__(self, numbers: range, name: Callable[[int], str]) -> None:
        self.numbers, self.name, self.count = numbers, name, len(numbers)

    def close(self) -> Numbered:
        return self

    def __iter__(self) -> Iterator[tuple[str, str]]:
        name = self.name
        for number in self.numbers:
            yield "", name(number)

    def names_in(self, folder: str) -> Iterator[str]:
        return (name for _folder, name in self) if folder == "" else iter(())

    def has_stem(self, folder_stem: tuple[str, str]) -> bool:
        folder, stem = folder_stem
        return folder == "" and stem.isdigit() and self.is_name(int(stem), stem)

    def ends(self) -> Numbered:
        """The first and last numbers only: what the per-file checks look at."""
        first, last = self.numbers[0], self.numbers[-1]
        return Numbered(range(first, last + 1, max(1, last - first)), self.name)

    def is_name(self, number: int, stem: str) -> bool:
        """Whether ``stem`` is unit ``number``'s name (without its suffix) in this range."""
        return number in self.numbers and PurePath(self.name(number)).stem == stem


class Claims:
    """The outputs each numbered source will write: a folder and suffix per (source, variant),
    and its range.  ``claimant(output)`` finds the range that writes where a listed unit
    would, and ``overlaps()`` two ranges that write the same names."""

    def __init__(self) -> None:
        self._by_folder: dict[tuple[str, str], list[tuple[Numbered, int]]] = {}
        self.indexes: set[int] = set()  # the numbered sources

    def add(self, output_rel: PurePath, numbers: Numbered, source_index: int) -> None:
        """``output_rel``: where the range's first unit goes (one variant's)."""
        key = (output_rel.parent.as_posix(), output_rel.suffix)
        self.indexes.add(source_index)
        if all(n is not numbers for n, _ in self._by_folder.get(key, ())):
            self._by_folder.setdefault(key, []).append((numbers, source_index))

    def __bool__(self) -> bool:
        return bool(self._by_folder)

    def claimant(self, output_rel: PurePath) -> int | None:
        """The numbered source that writes ``output_rel`` too, or None."""
        ranges = self._by_folder.get((output_rel.parent.as_posix(), output_rel.suffix))
        stem = output_rel.stem
        if ranges and stem.isdigit():
            for numbers, index in ranges:
                if numbers.is_name(int(stem), stem):
                    return index
        return None

    def overlaps(self) -> tuple[int, int, str] | None:
        """Two numbered sources that write the same names: (source, other source, folder)."""
        for (folder, _suffix), ranges in self._by_folder.items():
            for k, (numbers, index) in enumerate(ranges):
                for other, other_index in ranges[k + 1:]:
                    a, b = numbers.numbers, other.numbers
                    if max(a[0], b[0]) <= min(a[-1], b[-1]):
                        return other_index, index, folder or "."
        return None
