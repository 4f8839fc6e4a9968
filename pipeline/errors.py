"""Errors that say where and what to do.

Every error carries enough context to act on at 3 a.m.: the file (and for job
files the line and column), the stage, and a remedy.  Each subclasses the
builtin it resembles, as PyAV's errors do, so generic handlers still work.
"""
from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


def shown(path: str | Path) -> str:
    """``path`` as messages show it: normalized, so ``jobs/../clips/x.mp4`` reads ``clips/x.mp4``."""
    return os.path.normpath(path)


def os_reason(exc: BaseException) -> str:
    """An OSError or PyAV error (both carry ``strerror``) in words, without ``[Errno N]`` or the
    file name the message already shows; other exceptions as ``str(exc)``."""
    return getattr(exc, "strerror", None) or str(exc)


@dataclass(frozen=True)
class Location:
    """A place in a job file (1-based line and column, as editors show them)."""

    file: Path
    line: int
    column: int

    def __str__(self) -> str:
        return f"{shown(self.file)}:{self.line}:{self.column}"


class PipelineError(Exception):
    """Base class of everything this package raises on purpose."""


class JobError(PipelineError, ValueError):
    """The job itself is invalid (bad YAML, unknown key, missing weights...).

    Rendered as ``file:line:col: where: message; hint``.  The CLI exits 2.
    """

    def __init__(self, message: str, *, location: Location | None = None,
                 where: str = "", hint: str = "") -> None:
        self.message = message
        self.location = location
        self.where = where
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(f"{self.location}:")
        if self.where:
            parts.append(f"{self.where}:")
        parts.append(self.message)
        text = " ".join(parts)
        if self.hint:
            text += f"; {self.hint}"
        return text


class JobErrors(JobError):
    """Several mistakes in one job, all reported at once (a night is not spent finding them
    one run at a time).  ``errors`` holds each located JobError, in file order."""

    def __init__(self, errors: list[JobError]) -> None:
        self.errors = sorted(errors, key=_file_order)
        super().__init__(f"{len(self.errors)} mistakes in the job", location=None)

    def __str__(self) -> str:
        return f"{len(self.errors)} mistakes in the job:\n" + "\n".join(f"  {e}" for e in self.errors)


def _file_order(error: JobError) -> tuple:
    loc = error.location
    return (0, str(loc.file), loc.line, loc.column) if loc is not None else (1, "", 0, 0)


class Problems:
    """Collects JobErrors from independent checks so that all of them are reported::

        problems = Problems()
        with problems.check():
            ...            # a JobError here is kept, and the next check runs
        problems.raise_if_any()
    """

    def __init__(self) -> None:
        self.errors: list[JobError] = []

    @contextmanager
    def check(self) -> Iterator[None]:
        try:
            yield
        except JobErrors as exc:
            self.errors.extend(exc.errors)
        except JobError as exc:
            self.errors.append(exc)

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise JobErrors(self.errors)


class MediaError(PipelineError, ValueError):
    """A source file could not be read, or an output could not be written."""

    def __init__(self, path: str | Path, reason: str, *, stage: str = "",
                 hint: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        self.stage = stage
        self.hint = hint
        super().__init__(str(self))

    def __reduce__(self):  # pickled across processes (a Ray actor): rebuilt with its fields
        return type(self), (self.path, self.reason), self.__dict__

    def __str__(self) -> str:
        where = shown(self.path)
        if self.stage:
            where += f" ({self.stage})"
        text = f"{where}: {self.reason}"
        if self.hint:
            text += f"; {self.hint}"
        return text


class _FileErrorMixin:
    """For the subclasses that also are the OSError they resemble (as PyAV's errors are):
    ``except FileNotFoundError`` catches them, and errno, strerror and filename are set."""

    _errno = 0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.errno = self._errno
        self.strerror = self.reason
        self.filename = str(self.path)


class MediaNotFoundError(_FileErrorMixin, MediaError, FileNotFoundError):
    _errno = errno.ENOENT


class MediaPermissionError(_FileErrorMixin, MediaError, PermissionError):
    _errno = errno.EACCES


class WeightsError(PipelineError, ValueError):
    """A weights file is missing, unreadable, or of the wrong model family."""

    def __init__(self, path: str | Path, reason: str, *, hint: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        self.hint = hint
        super().__init__(str(self))

    def __reduce__(self):
        return type(self), (self.path, self.reason), self.__dict__

    def __str__(self) -> str:
        text = f"{shown(self.path)}: {self.reason}"
        if self.hint:
            text += f"; {self.hint}"
        return text


# errno values that mean "the output side cannot take more": not the source's fault, and the
# same for every unit after this one, so the run stops instead of failing each unit in turn.
_STORAGE_ERRNOS = frozenset({28, 30, 122})  # ENOSPC, EROFS, EDQUOT (Linux numbering)


def storage_error(exc: BaseException | None) -> OSError | None:
    """The OSError in ``exc``'s chain (causes and contexts) that says the disk is full, over
    quota or read-only; None when the failure is something else."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class WeightsNotFoundError(_FileErrorMixin, WeightsError, FileNotFoundError):
    _errno = errno.ENOENT


class WeightsPermissionError(_FileErrorMixin, WeightsError, PermissionError):
    _errno = errno.EACCES


def file_error(base: type, exc: BaseException | None) -> type:
    """The subclass of ``base`` (MediaError or WeightsError) that also is ``exc``'s OSError
    kind (not found, permission), else ``base`` itself."""
    kinds = {MediaError: (MediaNotFoundError, MediaPermissionError),
             WeightsError: (WeightsNotFoundError, WeightsPermissionError)}[base]
    if isinstance(exc, FileNotFoundError):
        return kinds[0]
    if isinstance(exc, PermissionError):
        return kinds[1]
    return base
