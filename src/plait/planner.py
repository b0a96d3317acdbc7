"""Action keys, and the decision for each action: up to date, restore from the store, or run — with
the reason. Pure: it sees the store only through the values it is given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from plait.digest import Digest
from plait.model import Action
from plait.request import Input, Request, key_of
from plait.store import CachedResult, LastBuild

Outcome = Literal["up-to-date", "restore", "run"]


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    key: str
    material: dict[str, Any]


def request(
    action: Action,
    inputs: Mapping[str, Input],
    tool: Digest | None,
    toolchain: Mapping[str, str] | None = None,
) -> Request:
    """The request a builder makes of an executor, once its inputs' content (and its
    toolchain's, path by path) is known."""
    return Request(
        name=action.name,
        argv=action.argv,
        env=action.env,
        inputs=inputs,
        outputs=action.outputs,
        links=frozenset(action.links),
        tool=tool,
        named=action.named,
        toolchain=toolchain or {},
        platform=action.platform,
    )


def decide(
    action: Action,
    material: dict[str, Any],
    cached: CachedResult | None,
    tree: Mapping[str, Digest | None],
    last: LastBuild | None,
    producer: Mapping[str, str],
    blobs_present: bool = True,
    damaged: str | None = None,
) -> Decision:
    """`tree` maps each cached output path to the digest of the file there now (None: missing).
    `damaged` names an output whose blob the store removed for not having its digest."""
    key = key_of(material)
    if not action.is_builder:
        return Decision("run", "no outputs: runs whenever it is asked for", key, material)
    if cached is None or not blobs_present:
        why = why_changed(material, last, producer)
        if last is not None and last.key == key:
            why = "not in the store"
        if damaged is not None:
            why = f"the store's copy of '{damaged}' was damaged (removed)"
        return Decision("run", why, key, material)
    for out in cached.outputs:
        now = tree.get(out.path)
        if now != out.digest:
            state = "missing" if now is None else "modified"
            return Decision("restore", f"output '{out.path}' {state}", key, material)
    if last is None or last.key != key:
        return Decision("up-to-date", "outputs already match the store", key, material)
    return Decision("up-to-date", "up to date", key, material)


def why_changed(
    material: dict[str, Any], last: LastBuild | None, producer: Mapping[str, str]
) -> str:
    """The first difference between this material and the last build's, in plain words."""
    if last is None:
        return "never built"
    old = last.material
    for field, words in (
        ("argv", "command changed"),
        ("env", "environment changed"),
        ("tool", "tool changed"),
        ("toolchain", "toolchain changed"),
        ("outputs", "declared outputs changed"),
    ):
        if old.get(field) != material[field]:
            return words
    old_inputs: dict[str, str] = old.get("inputs", {})
    new_inputs: dict[str, str] = material["inputs"]
    for path in sorted(set(old_inputs) | set(new_inputs)):
        if path not in old_inputs:
            return f"input '{path}' added"
        if path not in new_inputs:
            return f"input '{path}' removed"
        if old_inputs[path] != new_inputs[path]:
            if path in producer:
                return f"dependency '{producer[path]}' produced different output '{path}'"
            return f"input '{path}' changed"
    if old.get("executable") != material["executable"]:
        return "an input's executable bit changed"
    return "not in the store"
