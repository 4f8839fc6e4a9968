"""load_job(path) -> Job: the job file as frozen dataclasses, every error located.

Nothing downstream reads raw dicts.  Stage options are parsed into each
stage's own ``Params`` dataclass, looked up in the stage registry.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from ..errors import JobError, Location, Problems
from ..machine.precisions import PRECISIONS
from ..sources import get_source, source_keys
from ..sources.base import SourceSpec
from ..stages import get_stage, stage_names
from ..stages.variants import Branch, VariantsParams
from ..typed_yaml import (Node, ParseContext, describe, did_you_mean, load_yaml, parse_dataclass,
                          parse_value)
from .options import ContactSheetOptions, ManifestOptions, PickOptions
from .safety import RESERVED, reserved_reason

TOP_LEVEL_KEYS = ("name", "sources", "output", "device", "precision", "batch_size", "workers", "threads",
                  "encoders", "commit_every", "stages", "contact_sheet", "manifest", "pick")
#: keys a ``sources:`` entry takes beside its kind; the folder ones not for a kind of options
SOURCE_ENTRY_KEYS = ("into", "sidecars", "exclude", "follow_links")
FOLDER_ONLY_KEYS = ("sidecars", "exclude", "follow_links")
FOLLOW_LINKS = ("inside", "outside")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class StageSpec:
    name: str
    params: Any  # the stage's frozen Params dataclass
    index: int
    location: Location
    within: str = ""  # a branch's stage: "stages[2].variants.starry"

    @property
    def where(self) -> str:
        return f"{self.within or 'stages'}[{self.index}] ({self.name})"


@dataclass(frozen=True)
class Job:
    path: Path
    name: str
    sources: tuple[SourceSpec, ...]
    output: Path
    device: str  # auto | cpu | cuda | cuda:N
    precision: str  # auto | fp32 | fp16 | bf16
    batch_size: int | None  # None means auto
    workers: int | None  # decode/encode threads each; None means auto
    stages: tuple[StageSpec, ...]  # always decode first, encode last
    contact_sheet: ContactSheetOptions | None = None
    output_location: Location | None = None  # where 'output' was written, for errors about it
    contact_sheet_location: Location | None = None
    threads: int | None = None  # cores the thread budget splits (pipeline/machine/threads.py); None means auto
    commit_every: float = 60.0  # seconds of work a kill may cost, at most about (video)
    encoders: int | None = None  # video segments encoded at once (pipeline/machine/threads.py); None: auto
    manifest: ManifestOptions = ManifestOptions()  # output/manifest.jsonl, and .csv if asked
    pick: PickOptions | None = None  # each image through some of the variants only

    @property
    def variants(self) -> tuple[str, ...]:
        """The names of the ``variants`` stage's branches, in the job's order (none: ())."""
        spec = next((s for s in self.stages if s.name == "variants"), None)
        return tuple(b.name for b in spec.params.branches) if spec else ()


def load_job(path: str | Path, problems: Problems | None = None) -> Job | None:
    """The job file, checked whole.  Every mistake is raised at once (``JobErrors``); or, with
    ``problems``, added to it, and a job returned as far as it parsed (a key that failed takes
    its default; sources or stages that failed are empty; None when the output, needed for
    every further check, did not parse), so that the caller's further checks (weights,
    sources, the output folder) report their mistakes in the same pass."""
    path = Path(path)
    root = load_yaml(path)
    ctx = ParseContext(file=path, base_dir=path.resolve().parent)
    if not root.is_mapping:
        raise JobError(f"a job file is a mapping of keys, got {describe(root.value)}",
                       location=root.location)
    top = root.value
    collected = Problems()  # every mistake in the file at once, not one per run
    for key, loc in root.key_locations.items():
        if key not in TOP_LEVEL_KEYS:
            hint = did_you_mean(key, TOP_LEVEL_KEYS)
            collected.errors.append(JobError(
                f"unknown key '{key}'", location=loc,
                hint=f"{hint + ' ' if hint else ''}valid keys: {', '.join(TOP_LEVEL_KEYS)}"))
    for key in ("sources", "output", "stages"):
        if key not in top:
            collected.errors.append(JobError(f"missing required key '{key}'", location=root.location))

    values: dict[str, Any] = {"name": path.stem, "contact_sheet": None}
    parsers = {
        "name": lambda: parse_value(str, top["name"], "name", ctx) if "name" in top else path.stem,
        "output": lambda: parse_value(Path, top["output"], "output", ctx),
        "device": lambda: _choice_by_pattern(top.get("device"), "device", "auto", _DEVICE,
                                             "auto, cpu, cuda or cuda:N"),
        "precision": lambda: _literal(top.get("precision"), "precision", "auto", PRECISIONS),
        "batch_size": lambda: _auto_or_positive_int(top.get("batch_size"), "batch_size", ctx),
        "workers": lambda: _auto_or_positive_int(top.get("workers"), "workers", ctx),
        "threads": lambda: _auto_or_positive_int(top.get("threads"), "threads", ctx),
        "encoders": lambda: _auto_or_positive_int(top.get("encoders"), "encoders", ctx),
        "commit_every": lambda: _positive_seconds(top.get("commit_every"), "commit_every", 60.0),
        "sources": lambda: _parse_sources(top["sources"], ctx),
        "stages": lambda: _parse_stages(top["stages"], ctx),
        "contact_sheet": lambda: (parse_value(ContactSheetOptions, top["contact_sheet"],
                                              "contact_sheet", ctx)
                                  if "contact_sheet" in top else None),
        "manifest": lambda: (parse_value(ManifestOptions, top["manifest"], "manifest", ctx)
                             if "manifest" in top else ManifestOptions()),
        "pick": lambda: parse_value(PickOptions, top["pick"], "pick", ctx) if "pick" in top else None,
    }
    for key, parse in parsers.items():
        if key in ("sources", "output", "stages") and key not in top:
            continue  # reported above
        with collected.check():
            values[key] = parse()
    if "stages" in values:
        with collected.check():
            _check_pick(values.get("pick"), values["stages"], top.get("pick"))
    if problems is None:
        collected.raise_if_any()
    else:
        problems.errors += collected.errors
        if collected.errors:  # as far as it parsed: the defaults for what did not
            if "output" not in values:
                return None
            defaults = {"device": "auto", "precision": "auto", "batch_size": None, "workers": None,
                        "threads": None, "encoders": None, "commit_every": 60.0, "sources": (),
                        "stages": (), "manifest": ManifestOptions(), "pick": None}
            values = {**defaults, **values}
    sheet = values.pop("contact_sheet")
    return Job(path=path, **values, contact_sheet=sheet, output_location=top["output"].location,
               contact_sheet_location=top["contact_sheet"].location if sheet else None)


def _positive_seconds(node: Node | None, where: str, default: float) -> float:
    if node is None:
        return default
    value = node.value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise JobError(f"{describe(value)} is not valid; expected a number of seconds above 0",
                   location=node.location, where=where)


def _literal(node: Node | None, where: str, default: str, options: tuple[str, ...]) -> str:
    if node is None:
        return default
    if isinstance(node.value, str) and node.value in options:
        return node.value
    hint = did_you_mean(str(node.value), options)
    raise JobError(f"{describe(node.value)} is not valid; expected one of {', '.join(options)}",
                   location=node.location, where=where, hint=hint)


def _choice_by_pattern(node: Node | None, where: str, default: str, pattern: re.Pattern,
                       valid: str) -> str:
    if node is None:
        return default
    if isinstance(node.value, str) and pattern.match(node.value):
        return node.value
    raise JobError(f"{describe(node.value)} is not valid; expected {valid}",
                   location=node.location, where=where)


def _auto_or_positive_int(node: Node | None, where: str, ctx: ParseContext) -> int | None:
    if node is None or node.value == "auto":
        return None
    if isinstance(node.value, int) and not isinstance(node.value, bool) and node.value > 0:
        return node.value
    raise JobError(f"{describe(node.value)} is not valid; expected 'auto' or a positive integer",
                   location=node.location, where=where)


def _parse_sources(node: Node, ctx: ParseContext) -> tuple[SourceSpec, ...]:
    if not isinstance(node.value, list) or not node.value:
        raise JobError("expected a list of sources, e.g. '- images: photos/'",
                       location=node.location, where="sources")
    specs, problems = [], Problems()
    for i, item in enumerate(node.value):
        with problems.check():
            specs.append(_parse_source(i, item, ctx))
    problems.raise_if_any()
    return tuple(specs)


def _parse_source(i: int, item: Node, ctx: ParseContext) -> SourceSpec:
    where = f"sources[{i}]"
    if not item.is_mapping:
        raise JobError(f"expected a mapping like 'images: photos/', got {describe(item.value)}",
                       location=item.location, where=where)
    known = source_keys()
    options = SOURCE_ENTRY_KEYS
    kinds = [k for k in item.value if k in known]
    for key, loc in item.key_locations.items():
        if key not in known and key not in options:
            hint = did_you_mean(key, known + options)
            raise JobError(f"unknown key '{key}'", location=loc, where=where,
                           hint=f"{hint + ' ' if hint else ''}valid keys: "
                                f"{', '.join(known + options)}")
    if len(kinds) != 1:
        raise JobError(f"each source needs exactly one of {', '.join(known)}",
                       location=item.location, where=where)
    kind = kinds[0]
    options = None
    if get_source(kind).Options is not None:  # a mapping of options, not a path
        options = parse_dataclass(get_source(kind).Options, item.value[kind], f"{where}.{kind}", ctx)
        for key in FOLDER_ONLY_KEYS:
            if key in item.value:
                raise JobError(f"'{key}' does not apply to a '{kind}' source (it reads no folder)",
                               location=item.key_locations[key], where=where)
        pattern = str(options.path)
    else:
        pattern = parse_value(str, item.value[kind], f"{where}.{kind}", ctx)
    into = parse_value(str, item.value["into"], f"{where}.into", ctx) if "into" in item.value else ""
    if options is not None and getattr(options, "into", ""):
        if into:
            raise JobError(f"'into' is given twice, in '{kind}' and beside it", location=item.location,
                           where=where, hint="keep one")
        into = options.into
    if into and (reserved_reason(PurePath(into)) or any(ord(c) < 32 for c in into)):
        raise JobError(f"'into: {into!r}' would put outputs on the job's own files: "
                       f"{reserved_reason(PurePath(into)) or 'a control character in a name'}",
                       location=(item.value["into"].location if "into" in item.value
                                 else item.location), where=where,
                       hint="name a plain folder, e.g. 'into: styled'")
    if into and (Path(into).is_absolute() or ".." in Path(into).parts):
        raise JobError(f"'into' must be a relative folder inside the output, got '{into}'",
                       location=item.value["into"].location, where=where)
    sidecars, exclude = (_patterns(item, key, where, ctx) for key in ("sidecars", "exclude"))
    follow_links = _literal(item.value.get("follow_links"), f"{where}.follow_links", "inside",
                            FOLLOW_LINKS)
    return SourceSpec(kind=kind, pattern=pattern, path=ctx.base_dir / Path(pattern).expanduser(),
                      into=into, location=item.location, sidecars=sidecars, exclude=exclude,
                      options=options, follow_links=follow_links)


def _patterns(item: Node, key: str, where: str, ctx: ParseContext) -> tuple[str, ...]:
    """A source's list of glob patterns (``sidecars: same_stem`` alone is one too)."""
    if key not in item.value:
        return ()
    node = item.value[key]
    if isinstance(node.value, list):
        values = tuple(parse_value(str, one, f"{where}.{key}[{i}]", ctx)
                       for i, one in enumerate(node.value))
    else:
        values = (parse_value(str, node, f"{where}.{key}", ctx),)
    for value in values:
        parts = value.split("/")
        if not value or value.startswith("/") or ".." in parts:
            raise JobError(f"'{key}' pattern '{value}' must be relative to the source's folder, "
                           "without '..'", location=node.location, where=f"{where}.{key}",
                           hint="e.g. '*.txt' (any depth), 'labels/*.json' or 'same_stem'"
                                if key == "sidecars" else "e.g. '**/thumbs/**'")
    return values


def _parse_stages(node: Node, ctx: ParseContext) -> tuple[StageSpec, ...]:
    if not isinstance(node.value, list) or not node.value:
        raise JobError("expected a list of stages, e.g. '- decode', '- fast_style: {weights: ...}'",
                       location=node.location, where="stages")
    specs, problems = [], Problems()
    for i, item in enumerate(node.value):
        with problems.check():
            specs.append(_parse_stage(i, item, ctx))
    problems.raise_if_any()
    return _with_io_stages(specs, ctx)


def _parse_stage(i: int, item: Node, ctx: ParseContext, within: str = "") -> StageSpec:
    name, options, name_loc = _stage_entry(item, i, within)
    where = f"{within or 'stages'}[{i}] ({name})"
    try:
        cls = get_stage(name)
    except KeyError:
        hint = did_you_mean(name, stage_names())
        raise JobError(f"unknown stage '{name}'", location=name_loc,
                       where=f"{within or 'stages'}[{i}]",
                       hint=f"{hint + ' ' if hint else ''}known stages: "
                            f"{', '.join(stage_names())}") from None
    if within and cls.kind in ("decode", "encode", "variants"):
        raise JobError(f"{name} cannot be inside a variant: each branch is a list of the stages "
                       "between decode and encode", location=name_loc, where=where,
                       hint="put it in the job's own stage list")
    options = options if options is not None else Node({}, item.location)
    if cls.kind == "variants":
        params = _parse_variants(options, where, f"stages[{i}].variants", ctx)
    else:
        params = parse_value(cls.Params, options, where, ctx)
    return StageSpec(name=name, params=params, index=i, location=name_loc, within=within)


def _parse_variants(node: Node, where: str, within: str, ctx: ParseContext) -> VariantsParams:
    """``variants: {name: [stages] | {stages: [stages], strength: s}, ...}``."""
    example = "e.g. 'variants: {starry: [{fast_style: {weights: a.safetensors}}], plain: []}'"
    if not node.is_mapping or not node.value:
        raise JobError(f"expected a mapping of branch names to stage lists, got "
                       f"{describe(node.value)}", location=node.location, where=where, hint=example)
    branches, problems = [], Problems()
    for name, branch in node.value.items():
        with problems.check():
            branches.append(_parse_branch(str(name), branch, node.key_locations[name],
                                          f"{within}.{name}", ctx))
    problems.raise_if_any()
    return VariantsParams(tuple(branches))


def _parse_branch(name: str, node: Node, name_loc: Location, within: str,
                  ctx: ParseContext) -> Branch:
    if (not name or name.startswith(".") or any(c in name for c in '/\\:*?"<>|')
            or any(ord(c) < 32 or ord(c) == 127 for c in name) or name != name.strip()
            or name in RESERVED):
        raise JobError(f"variant name {name!r} is not a folder name of its own", location=name_loc,
                       where=within, hint="its outputs go under output/<name>/: use letters, "
                                          "digits, '-' and '_' (not the job's own "
                                          f"{', '.join(sorted(RESERVED))})")
    strength, stages_node = 1.0, node
    if node.is_mapping:
        for key, loc in node.key_locations.items():
            if key not in ("stages", "strength"):
                raise JobError(f"unknown key '{key}'", location=loc, where=within,
                               hint="a branch is a stage list, or {stages: [...], strength: 0..1}")
        strength = parse_value(float, node.value["strength"], f"{within}.strength", ctx) \
            if "strength" in node.value else 1.0
        if not 0.0 <= strength <= 1.0:
            raise JobError(f"strength must be 0..1, got {strength}",
                           location=node.value["strength"].location, where=f"{within}.strength")
        stages_node = node.value.get("stages", Node([], node.location))
    if stages_node.value is None:  # 'plain:' with nothing: the trunk's frame as it is
        stages_node = Node([], stages_node.location)
    if not isinstance(stages_node.value, list):
        raise JobError(f"expected a list of stages, got {describe(stages_node.value)}",
                       location=stages_node.location, where=within,
                       hint="e.g. [{fast_style: {weights: a.safetensors}}], or [] for the frame "
                            "as it is")
    specs, problems = [], Problems()
    for j, item in enumerate(stages_node.value):
        with problems.check():
            specs.append(_parse_stage(j, item, ctx, within))
    problems.raise_if_any()
    temporal = [s for s in specs if get_stage(s.name).kind == "temporal"]
    if temporal and strength < 1.0:
        raise JobError("a branch with a temporal stage cannot have a strength below 1: the "
                       "smoothing would see frames the blend then changes", location=name_loc,
                       where=within, hint="put temporal_smooth after the variants stage")
    return Branch(name=name, stages=tuple(specs), strength=strength)


def _check_pick(pick: PickOptions | None, stages: tuple[StageSpec, ...],
                node: Node | None) -> None:
    if pick is None:
        return
    spec = next((s for s in stages if s.name == "variants"), None)
    if spec is None:
        raise JobError("'pick' chooses among variants, but the job has no variants stage",
                       location=node.location, where="pick",
                       hint="add '- variants: {name: [stages], ...}' to the stages, or remove pick")
    n = len(spec.params.branches)
    if pick.count > n:
        raise JobError(f"pick.count is {pick.count} but there are {n} variants",
                       location=node.location, where="pick",
                       hint=f"count is how many of the {n} variants each image goes through")


def _stage_entry(item: Node, index: int, within: str = "") -> tuple[str, Node | None, Location]:
    """A bare name, or a one-key mapping {name: {options}}."""
    if isinstance(item.value, str):
        return item.value, None, item.location
    if item.is_mapping and len(item.value) == 1:
        (name, options), = item.value.items()
        return name, options, item.key_locations[name]
    raise JobError(f"expected a stage name or a one-key mapping like 'resize: {{short_side: 512}}', "
                   f"got {describe(item.value)}", location=item.location,
                   where=f"{within or 'stages'}[{index}]")


def _with_io_stages(specs: list[StageSpec], ctx: ParseContext) -> tuple[StageSpec, ...]:
    """decode first and encode last; either may be left out for its defaults."""
    fans = [spec for spec in specs if get_stage(spec.name).kind == "variants"]
    if len(fans) > 1:
        raise JobError("only one variants stage per job: put every branch in it",
                       location=fans[1].location, where=fans[1].where)
    for spec in specs:
        kind = get_stage(spec.name).kind
        first, last = spec is specs[0], spec is specs[-1]
        if kind == "decode" and not first:
            raise JobError("decode must be the first stage", location=spec.location, where=spec.where)
        if kind == "encode" and not last:
            raise JobError("encode must be the last stage", location=spec.location, where=spec.where)
    out = list(specs)
    if get_stage(out[0].name).kind != "decode":
        cls = get_stage("decode")
        out.insert(0, StageSpec("decode", cls.Params(), -1, Location(ctx.file, 1, 1)))
    if get_stage(out[-1].name).kind != "encode":
        cls = get_stage("encode")
        out.append(StageSpec("encode", cls.Params(), len(specs), Location(ctx.file, 1, 1)))
    return tuple(out)
