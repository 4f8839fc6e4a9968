"""docs/job-file.md lists every key the job file accepts, each in the section it belongs to.

The page's format, which this test reads:

- ``## Top-level keys``: every key of ``TOP_LEVEL_KEYS`` as inline code (`` `name` ``);
  a ``### key`` heading under it for each top-level key whose value is an options
  dataclass (``contact_sheet``, ``manifest``, ``pick``), listing that dataclass's fields;
- ``## Sources``: a ``### kind`` heading per registered source kind, listing the kind's
  own key, its ``Options`` fields (a kind that takes a mapping), and the keys allowed
  beside it (``into``; ``sidecars`` and ``exclude`` for kinds that read a path);
- ``## Stages``: a ``### stage`` heading per registered stage, listing every field of the
  stage's ``Params`` dataclass and of the option dataclasses nested in it (``encode``'s
  ``image`` and ``video``), anywhere in that section (sub-headings included); for
  ``variants``, the keys of a branch (``stages``, ``strength``).

A key counts as listed when it appears as an inline code span of its own (`` `key` ``)
or as the last part of a dotted one (`` `image.format` ``).
"""
from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing
from pathlib import Path

from pipeline.job import config as config_module
from pipeline.sources import get_source, source_keys
from pipeline.stages import get_stage, stage_names
from pipeline.stages.variants import Branch

TOP_LEVEL_KEYS = config_module.TOP_LEVEL_KEYS
Job = config_module.Job

PAGE = Path(__file__).resolve().parents[1] / "docs" / "job-file.md"
# Keys a source entry takes beside its kind; a kind with an ``Options`` mapping reads no
# folder, so the folder-only ones do not apply to it.
SOURCE_KEYS_BESIDE = config_module.SOURCE_ENTRY_KEYS
SOURCE_KEYS_BESIDE_OPTIONS = tuple(k for k in SOURCE_KEYS_BESIDE
                                   if k not in config_module.FOLDER_ONLY_KEYS)
# A variants branch's name is its mapping key, not a key of its own.
BRANCH_NAME_FIELD = "name"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE = re.compile(r"`([^`\n]+)`")


def _sections(text: str) -> list[tuple[int, str, str]]:
    """(level, title, body) per heading; the body runs to the next heading of the same or a
    higher level, so it includes its sub-sections.  Fenced code blocks hold no headings."""
    lines, heads, fenced = text.splitlines(), [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            heads.append((i, len(m.group(1)), m.group(2).replace("`", "").strip()))
    out = []
    for n, (i, level, title) in enumerate(heads):
        end = next((j for j, lv, _ in heads[n + 1:] if lv <= level), len(lines))
        out.append((level, title, "\n".join(lines[i + 1:end])))
    return out


def _section(sections, title: str, level: int, within: str | None = None) -> str | None:
    """The body of the heading ``title`` at ``level`` (under the level-2 heading ``within``)."""
    parent = None
    for lv, t, body in sections:
        if lv == 2:
            parent = t
        if lv == level and t == title and (within is None or parent == within):
            return body
    return None


def _listed(body: str) -> set[str]:
    spans = set(_CODE.findall(body))
    return spans | {span.rsplit(".", 1)[-1] for span in spans}


def _hints(cls: type) -> dict[str, typing.Any]:
    """A dataclass's field types, resolved (its module uses ``from __future__ import
    annotations``); a field whose annotation cannot be resolved is left out."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - one unresolvable name must not hide the others
        namespace = vars(sys.modules[cls.__module__])
        hints = {}
        for f in dataclasses.fields(cls):
            try:
                hints[f.name] = eval(f.type, namespace) if isinstance(f.type, str) else f.type
            except Exception:  # noqa: BLE001
                pass
        return hints


def _option_classes(annotation: typing.Any) -> list[type]:
    """The dataclasses an annotation names (``X``, ``X | None``, ``Optional[X]``)."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return [annotation]
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return []  # a tuple of specs (sources, stages) has sections of its own
    return [a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a) and isinstance(a, type)]


def _fields(cls: type, prefix: str = "") -> list[tuple[str, str]]:
    """(key, dotted path) of every field, nested option dataclasses' fields too."""
    hints, out = _hints(cls), []
    for f in dataclasses.fields(cls):
        out.append((f.name, prefix + f.name))
        for nested in _option_classes(hints.get(f.name)):
            out += _fields(nested, f"{prefix}{f.name}.")
    return out


def expected_keys() -> list[tuple[str, int, str | None, list[tuple[str, str]]]]:
    """(section title, heading level, parent level-2 title, [(key, dotted path)]) for every
    place a key must be listed, from the code."""
    places = [("Top-level keys", 2, None, [(k, k) for k in TOP_LEVEL_KEYS])]
    job_hints = _hints(Job)
    for key in TOP_LEVEL_KEYS:
        for cls in _option_classes(job_hints.get(key)):
            places.append((key, 3, "Top-level keys", _fields(cls, f"{key}.")))
    for kind in source_keys():
        options = get_source(kind).Options
        keys = [(kind, kind)]
        if options is not None:
            keys += _fields(options, f"{kind}.")
            keys += [(k, k) for k in SOURCE_KEYS_BESIDE_OPTIONS]
        else:
            keys += [(k, k) for k in SOURCE_KEYS_BESIDE]
        places.append((kind, 3, "Sources", keys))
    for name in stage_names():
        cls = get_stage(name)
        if cls.kind == "variants":  # config parses branches, not the Params dataclass
            keys = [(f.name, f"{name}.<branch>.{f.name}") for f in dataclasses.fields(Branch)
                    if f.name != BRANCH_NAME_FIELD]
        else:
            keys = _fields(cls.Params, f"{name}.")
        places.append((name, 3, "Stages", keys))
    return places


def test_the_job_file_page_lists_every_key_in_its_section() -> None:
    sections = _sections(PAGE.read_text(encoding="utf-8"))
    missing = []
    for title, level, within, keys in expected_keys():
        body = _section(sections, title, level, within)
        heading = f"{'#' * level} {title}" + (f" (under '## {within}')" if within else "")
        if body is None:
            missing.append(f"no heading '{heading}': it should list "
                           + ", ".join(f"`{k}`" for k, _ in keys))
            continue
        listed = _listed(body)
        absent = [path for key, path in keys if key not in listed]
        if absent:
            missing.append(f"in '{heading}': " + ", ".join(f"`{p}`" for p in absent))
    assert not missing, (f"{PAGE.relative_to(PAGE.parents[1])} does not list every key the job "
                         "file accepts (add each as `key` in the section named):\n  "
                         + "\n  ".join(missing))


def test_the_reference_covers_the_registries() -> None:
    """The expectations are built from the code, not written out: guard against an
    import change that would leave them empty."""
    places = {title for title, *_ in expected_keys()}
    assert {"images", "videos", "generate", "decode", "encode", "variants", "contact_sheet"} <= places
    keys = {path for *_, ks in expected_keys() for _, path in ks}
    assert {"encode.video.crf", "encode.image.orientation", "pick.seed", "generate.count",
            "variants.<branch>.strength"} <= keys


def test_every_weights_file_a_documented_command_reads_is_shipped() -> None:
    """Issue 29 item 7: the README's ``stylize`` example read ``weights/mosaic.pth``, which is not
    in the repository.  A command a user copies from the README or the docs must find its
    weights (``--out`` files, which a command writes, are not inputs)."""
    repo = Path(__file__).resolve().parents[1]
    pages = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    read = {(page.name, m.group(1)) for page in pages
            for m in re.finditer(r"--weights\s+(weights/[^\s`'\")|]+)", page.read_text(encoding="utf-8"))}
    assert read, "the pattern found no command: the check would pass vacuously"
    missing = sorted(f"{page}: {path}" for page, path in read if not (repo / path).is_file())
    assert not missing, missing
