"""What changed between two job fingerprints: which changes a ledger accepts as an amendment
(a variant or a generated source added or removed), and the words a refusal uses."""
from __future__ import annotations

from typing import Any


def amendment(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """What a changed fingerprint may change without a restart: "variants" (branches added or
    removed), "generate" (``generate:`` sources added or removed, the others unchanged),
    "precision" (dropped from a chain that only decodes and encodes: its bytes never depended
    on it; ledgers written before such chains left it out), or None (anything else: refused)."""
    if "precision" in old and "precision" not in new and {
            k: v for k, v in old.items() if k != "precision"} == new:
        return "precision"
    if only_branches_added_or_removed(old, new):
        return "variants"
    if only_generators_added_or_removed(old, new):
        return "generate"
    return None


def only_generators_added_or_removed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two fingerprints differ only by ``generate:`` sources (by output folder) added
    or removed, those in both unchanged: like adding a folder of images to a job."""
    if old == new:
        return False
    rest = lambda fp: {k: v for k, v in fp.items() if k != "generated"}  # noqa: E731
    if rest(old) != rest(new):
        return False
    before, after = old.get("generated", {}), new.get("generated", {})
    return all(before[key] == after[key] for key in before.keys() & after.keys())


def only_branches_added_or_removed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two fingerprints differ only by ``variants`` branches added or removed (every
    branch in both the same, every other stage the same): the outputs of the branches in
    both are still right, so the job goes on where it was (the new branches from scratch)."""
    if old == new:
        return False

    def strip(fp: dict[str, Any]) -> dict[str, Any]:
        return {**fp, "stages": [{**s, "branches": None} if s.get("stage") == "variants" else s
                                 for s in fp.get("stages", [])]}

    if strip(old) != strip(new):
        return False
    branches = [next((s["branches"] for s in fp.get("stages", [])
                      if s.get("stage") == "variants"), None) for fp in (old, new)]
    if None in branches:
        return False
    before, after = branches
    return all(before[name] == after[name] for name in before.keys() & after.keys())


def runtime_hint(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Where the only change is where a network ran (``runs_in``: ONNX Runtime, or torch where
    absent), how to go on with the outputs made there; "" otherwise."""
    strip = lambda fp: {**fp, "stages": [{k: v for k, v in s.items() if k != "runs_in"}  # noqa: E731
                                         for s in fp.get("stages", [])]}
    if old == new or strip(old) != strip(new):
        return ""
    made_in = {s.get("runs_in") for s in old.get("stages", [])} - {None}
    if not made_in:
        return ("these outputs were made in torch: add 'runtime: torch' to the fast_style stage "
                "to go on with them; or ")
    return (f"these outputs were made in {', '.join(sorted(made_in))}: run where it can (the "
            "onnxruntime package installed, on the CPU, in fp32) with runtime: auto to go on "
            "with them; or ")


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """'stages[2].weights.sha256: 1a2b3c4d... -> 9f8e7d6c...; precision: fp32 -> bf16'."""
    a, b = _flatten(old), _flatten(new)
    changes = []
    for key in sorted(set(a) | set(b), key=lambda k: (k.split(".")[0], k)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            changes.append(f"{key}: {_short(a.get(key, '<absent>'))} -> {_short(b.get(key, '<absent>'))}")
    return "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {f"{prefix}.length": len(value)}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] + "..." if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text
