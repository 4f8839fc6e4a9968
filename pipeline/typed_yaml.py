"""YAML with locations, parsed into frozen dataclasses.

PyYAML's composer keeps the line and column of every node; we keep them too,
so every error can say ``file:line:col``.  ``parse_dataclass`` turns a mapping
node into a frozen dataclass from its type hints: unknown keys get a "did you
mean", wrong types say what was expected, and a ``ValueError`` raised by the
dataclass's ``__post_init__`` is reported at the mapping (or, for a
``ParamError`` naming a field, at that field).
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .errors import JobError, Location, Problems


@dataclass
class Node:
    """A YAML value with where it was written.

    ``value`` is a scalar, a ``dict[str, Node]`` or a ``list[Node]``;
    ``key_locations`` holds where each mapping key was written.
    """

    value: Any
    location: Location
    key_locations: dict[str, Location] = field(default_factory=dict)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)


class ParamError(ValueError):
    """Raised from ``__post_init__`` to blame one field rather than the mapping."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field_name = field_name
        super().__init__(message)


@dataclass(frozen=True)
class ParseContext:
    file: Path
    base_dir: Path  # relative paths in the job resolve against this folder


# Limits on what a job file may make us do.  A real job is a few KB, a few
# hundred values and about six levels deep; these limits only stop a data file
# passed by mistake, or a hostile file, from hanging or crashing validation.
MAX_JOB_BYTES = 1 << 20
MAX_VALUES = 100_000  # values after expanding aliases, each alias counted in full
MAX_DEPTH = 50        # nested lists and mappings; far below Python's recursion limit
MAX_INT = 2 ** 63 - 1  # the largest integer a job value may be (64-bit seeds and sizes)


def load_yaml(path: Path) -> Node:
    """Read a YAML file into located nodes; syntax errors become JobErrors."""
    try:
        size = path.stat().st_size
        if size > MAX_JOB_BYTES:  # checked before reading: never parse megabytes of YAML
            raise JobError(f"job file {path} is {size / 2**20:.1f} MiB; a job file is a few KB, "
                           f"and files over {MAX_JOB_BYTES >> 20} MiB are refused",
                           hint="did you point at a data file (an image, video or weights) "
                                "instead of the job's .yaml?")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobError(f"job file {path} does not exist", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"cannot read job file {path}: {exc}") from None
    loader = _JobLoader(text, path)
    try:
        root = loader.get_single_node()
        if root is None:
            raise JobError("the job file is empty", location=Location(path, 1, 1),
                           hint="a job needs at least 'sources', 'output' and 'stages'")
        return _convert(root, loader, path)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(path, mark.line + 1, mark.column + 1) if mark else None
        raise JobError(f"invalid YAML: {exc.problem or exc}", location=loc) from None
    finally:
        loader.dispose()


class _JobLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses alias bombs, recursive aliases and
    absurd nesting, each located where it happens in the file.

    The composer gives an anchor ('&a') and all its aliases ('*a') one shared
    node, so a 500-byte file can stand for a billion values, which ``_convert``
    would then expand one by one.  We count what each node expands to while
    composing (an alias adds its anchor's full count every time it is used)
    and stop at ``MAX_VALUES``; ``_convert`` therefore does bounded work.
    (CSafeLoader composes in C, where these checks cannot hook in; a job file
    is small, so the pure-Python loader's speed is fine.)
    """

    def __init__(self, text: str, path: Path) -> None:
        super().__init__(text)
        self.path = path
        self.open_totals: list[int] = []  # values so far in each node being composed
        self.open_anchors: set[str] = set()  # anchors whose value is being composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        where = _loc(self.path, event)
        is_alias = isinstance(event, yaml.AliasEvent)
        if is_alias and event.anchor in self.open_anchors:  # today's composer would make a cycle
            raise JobError(f"alias '*{event.anchor}' is inside the value anchored as "
                           f"'&{event.anchor}', so it would repeat forever", location=where,
                           hint="an alias may only repeat a value that is already complete")
        if len(self.open_totals) >= MAX_DEPTH:
            raise JobError(f"lists and mappings nested more than {MAX_DEPTH} deep", location=where,
                           hint="a job file nests a few levels; check the brackets")
        anchor = None if is_alias else event.anchor
        if anchor is not None:
            self.open_anchors.add(anchor)
        self.open_totals.append(1)  # this node; its children add to it
        try:
            node = super().compose_node(parent, index)
        finally:
            own = self.open_totals.pop()
            self.open_anchors.discard(anchor)
        if not is_alias:
            node.expanded_size = own
        if self.open_totals:
            self.open_totals[-1] += node.expanded_size
            if self.open_totals[-1] > MAX_VALUES:
                raise JobError(f"too many values after expanding aliases ('&'/'*'): more than "
                               f"{MAX_VALUES:,}; a job file this large is almost certainly a YAML "
                               "alias bomb or a mistake", location=where,
                               hint="write the job out plainly, or point at the right file")
        return node


def _loc(path: Path, node: yaml.Node | yaml.Event) -> Location:
    return Location(path, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(node: yaml.Node, loader: yaml.SafeLoader, path: Path) -> Node:
    # Bounded: _JobLoader refused trees over MAX_VALUES (aliases expanded) or
    # MAX_DEPTH deep, and trees containing themselves.
    if isinstance(node, yaml.MappingNode):
        values: dict[str, Node] = {}
        keys: dict[str, Location] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if isinstance(key, int) and not isinstance(key, bool):
                key = str(key)  # ``style: {0: 0.5, 2: 0.5}``: typed by the hint (dict[int, float])
            if not isinstance(key, str):
                raise JobError(f"keys must be names, got {key!r}", location=_loc(path, key_node))
            if key in values:
                raise JobError(f"duplicate key '{key}'", location=_loc(path, key_node),
                               hint=f"it was first given at line {keys[key].line}")
            values[key] = _convert(value_node, loader, path)
            keys[key] = _loc(path, key_node)
        return Node(values, _loc(path, node), keys)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(item, loader, path) for item in node.value], _loc(path, node))
    try:
        value = loader.construct_object(node)
    except ValueError as exc:  # a number YAML cannot make (an integer of 5,000 digits)
        raise JobError(f"{str(node.value)[:20]}... is not a number this job can use ({exc})"
                       if len(str(node.value)) > 20 else f"{node.value!r}: {exc}",
                       location=_loc(path, node), hint="write a number of a sane size") from None
    return Node(value, _loc(path, node))


def did_you_mean(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def describe(value: Any) -> str:
    """How a YAML value reads in an error message: ``'abc' (a string)``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int):
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value} (a number)"
    if isinstance(value, str):
        return f"'{value}' (a string)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def expected(tp: Any) -> str:
    """A type hint in words: 'an integer', 'one of png, jpg', ..."""
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is Path:
        return "a path"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(expected(a) for a in typing.get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin is dict:
        key, value = typing.get_args(tp)
        return f"a mapping of {expected(key)} to {expected(value)}"
    return str(tp)


def parse_value(tp: Any, node: Node, where: str, ctx: ParseContext) -> Any:
    """Check ``node`` against the type hint ``tp`` and return the typed value."""
    value = node.value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        mapping_error = None  # a mapping's own error, when a mapping is one of the choices
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_value(arg, node, where, ctx)
            except JobError as exc:
                if getattr(exc, "final", False):  # the right type, a wrong value: said as it is
                    raise
                if node.is_mapping and (typing.get_origin(arg) is dict
                                        or dataclasses.is_dataclass(arg)):
                    mapping_error = exc
        raise mapping_error or _type_error(tp, node, where)
    if origin is Literal:
        options = typing.get_args(tp)
        if value in options and type(value) is type(options[options.index(value)]):
            return value
        hint = did_you_mean(str(value), [str(o) for o in options]) if isinstance(value, str) else ""
        raise JobError(f"{describe(value)} is not valid; expected {expected(tp)}",
                       location=node.location, where=where, hint=hint)
    if origin is dict:
        return _parse_dict(tp, node, where, ctx)
    if dataclasses.is_dataclass(tp):
        if value is None:  # `decode:` with nothing after it means defaults
            value = {}
            node = Node({}, node.location)
        return parse_dataclass(tp, node, where, ctx)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -MAX_INT <= value <= MAX_INT:  # a seed, a size, a count: 64 bits at most
                exc = JobError(f"{value:.3e} is out of range (at most {MAX_INT:,} either way)",
                               location=node.location, where=where,
                               hint="write a number of a sane size")
                exc.final = True
                raise exc
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, str) and value:
            return (ctx.base_dir / Path(value).expanduser()).resolve()
    else:
        raise TypeError(f"typed_yaml cannot parse {tp!r}")  # a bug in a Params class
    raise _type_error(tp, node, where)


def _parse_dict(tp: Any, node: Node, where: str, ctx: ParseContext) -> dict:
    """A mapping typed ``dict[K, V]``; K is str, int (YAML's ``0:`` keys arrive as digits) or
    Path (resolved against the job's folder, like any path)."""
    if not node.is_mapping or not node.value:
        raise _type_error(tp, node, where)
    key_type, value_type = typing.get_args(tp)
    out = {}
    for key, child in node.value.items():
        if key_type is int:
            if not re.fullmatch(r"-?\d+", key):
                raise JobError(f"key '{key}' is not valid; expected {expected(key_type)}",
                               location=node.key_locations.get(key, node.location), where=where)
            typed_key: Any = int(key)
        elif key_type is Path:
            typed_key = (ctx.base_dir / Path(key).expanduser()).resolve()
        else:
            typed_key = key
        out[typed_key] = parse_value(value_type, child, f"{where}.{key}", ctx)
    return out


def _type_error(tp: Any, node: Node, where: str) -> JobError:
    return JobError(f"wrong type: expected {expected(tp)}, got {describe(node.value)}",
                    location=node.location, where=where)


def parse_dataclass(cls: type, node: Node, where: str, ctx: ParseContext) -> Any:
    """Build the frozen dataclass ``cls`` from a mapping node, with located errors."""
    if not node.is_mapping:
        raise JobError(f"expected a mapping of options, got {describe(node.value)}",
                       location=node.location, where=where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    problems = Problems()  # every unknown key and bad value of this mapping, not just the first
    for key, loc in node.key_locations.items():
        if key not in fields:
            valid = ", ".join(fields) if fields else "none (this stage takes no options)"
            hint = did_you_mean(key, fields)
            problems.errors.append(JobError(f"unknown key '{key}'", location=loc, where=where,
                                            hint=f"{hint + ' ' if hint else ''}valid keys: {valid}"))
    kwargs = {}
    for name, f in fields.items():
        with problems.check():
            if name in node.value:
                kwargs[name] = parse_value(hints[name], node.value[name], f"{where}.{name}", ctx)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise JobError(f"missing required key '{name}' ({expected(hints[name])})",
                               location=node.location, where=where)
    problems.raise_if_any()
    try:
        return cls(**kwargs)
    except ParamError as exc:
        loc = node.key_locations.get(exc.field_name, node.location)
        raise JobError(str(exc), location=loc, where=where) from None
    except ValueError as exc:
        raise JobError(str(exc), location=node.location, where=where) from None
