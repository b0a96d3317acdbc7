"""What the dump tells plait, decoded once into typed, frozen records.

The dump (dump.lisp) writes JSON with a schema version; plait adds the dump's key, the image's
digest and the digests of the .asd files it read, and caches the whole. `decode` checks every
field's type, so the rest of the frontend reads attributes, never dictionary keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plait.errors import PlaitError

SCHEMA = 1


class ProtocolError(PlaitError):
    """The dump wrote what this plait does not understand."""


@dataclass(frozen=True)
class Node:
    """One of ASDF's actions: (operation, component), numbered in ASDF's plan order."""

    id: int
    operation: str  # e.g. "compile-op"
    op_class: str  # the operation's class, PACKAGE::NAME
    system: str
    system_kind: str  # source, preloaded, require or immutable
    path: tuple[str, ...]  # the component's path below its system
    component_class: str
    is_system: bool
    entry_point: str | None
    is_source: bool
    in_image: bool  # ASDF's needed-in-image-p
    runs_tests: bool  # a test-op with a perform method of the system's own
    done_already: bool  # the system's own operation-done-p says done: ASDF never performs it
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]  # where the user's translations put them
    deps: tuple[int, ...]
    sandbox_outputs: tuple[str, ...]  # the same, under the sandbox's translation


@dataclass(frozen=True)
class Upgrade:
    """The newer ASDF in the source registry, which ASDF upgrades itself to."""

    asd: str
    source: str
    path: tuple[str, ...]  # system, then components
    outputs: tuple[str, ...]
    version: str


@dataclass(frozen=True)
class Connection:
    """A system that ASDF loads as soon as the systems it requires are loaded
    (asdf-system-connections): a build of those builds it too."""

    root: int  # its load-op's node
    requires: tuple[str, ...]


@dataclass(frozen=True)
class DumpData:
    schema: int
    asdf_version: str
    lisp_version: str
    asdf_upgrade: Upgrade | None
    features: tuple[str, ...]
    system_asds: tuple[tuple[str, str], ...]  # (system, its .asd file)
    roots: tuple[int, ...]
    connections: tuple[Connection, ...]
    nodes: tuple[Node, ...]
    key: str
    image: str
    asd_digests: dict[str, str]  # .asd file -> its digest when the dump read it


def _field(raw: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in raw:
        raise ProtocolError(f"the dump's {where} has no '{name}'", hint=_HINT)
    value = raw[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(
            f"the dump's {where} has '{name}' = {value!r}, not {_kind_name(kind)}", hint=_HINT
        )
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _strings(raw: dict[str, Any], name: str, where: str) -> tuple[str, ...]:
    values = _field(raw, name, list, where)
    if not all(isinstance(v, str) for v in values):
        raise ProtocolError(f"the dump's {where} has '{name}' = {values!r}", hint=_HINT)
    return tuple(values)


def _ints(raw: dict[str, Any], name: str, where: str) -> tuple[int, ...]:
    values = _field(raw, name, list, where)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ProtocolError(f"the dump's {where} has '{name}' = {values!r}", hint=_HINT)
    return tuple(values)


_HINT = "the dump comes from this plait's own dump.lisp: reinstall plait (./setup)"


def node(raw: dict[str, Any]) -> Node:
    where = f"node {raw.get('id')!r}"
    return Node(
        id=_field(raw, "id", int, where),
        operation=_field(raw, "operation", str, where),
        op_class=_field(raw, "op_class", str, where),
        system=_field(raw, "system", str, where),
        system_kind=_field(raw, "system_kind", str, where),
        path=_strings(raw, "path", where),
        component_class=_field(raw, "class", str, where),
        is_system=_field(raw, "is_system", bool, where),
        entry_point=_field(raw, "entry_point", (str, type(None)), where),
        is_source=_field(raw, "is_source", bool, where),
        in_image=_field(raw, "in_image", bool, where),
        runs_tests=_field(raw, "runs_tests", bool, where),
        done_already=_field(raw, "done_already", bool, where),
        inputs=_strings(raw, "inputs", where),
        outputs=_strings(raw, "outputs", where),
        deps=_ints(raw, "deps", where),
        sandbox_outputs=_strings(raw, "sandbox_outputs", where),
    )


def upgrade(raw: dict[str, Any]) -> Upgrade:
    where = "ASDF upgrade"
    return Upgrade(
        asd=_field(raw, "asd", str, where),
        source=_field(raw, "source", str, where),
        path=_strings(raw, "path", where),
        outputs=_strings(raw, "outputs", where),
        version=_field(raw, "version", str, where),
    )


def decode(raw: dict[str, Any]) -> DumpData:
    """The dump's JSON (with plait's additions) as typed records; a ProtocolError when it is
    of another schema or a field is not what this plait expects."""
    where = "graph"
    schema = _field(raw, "schema", int, where)
    if schema != SCHEMA:
        raise ProtocolError(
            f"the dump's graph has schema {schema}; this plait reads schema {SCHEMA}", hint=_HINT
        )
    up = _field(raw, "asdf_upgrade", (dict, type(None)), where)
    pairs = _field(raw, "system_asds", list, where)
    if not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
    ):
        raise ProtocolError(f"the dump's graph has 'system_asds' = {pairs!r}", hint=_HINT)
    digests = _field(raw, "asd_digests", dict, where)
    return DumpData(
        schema=schema,
        asdf_version=_field(raw, "asdf_version", str, where),
        lisp_version=_field(raw, "lisp_version", str, where),
        asdf_upgrade=upgrade(up) if up is not None else None,
        features=_strings(raw, "features", where),
        system_asds=tuple((p[0], p[1]) for p in pairs),
        roots=_ints(raw, "roots", where),
        connections=tuple(
            Connection(_field(c, "root", int, "connection"), _strings(c, "requires", "connection"))
            for c in _field(raw, "connections", list, where)
        ),
        nodes=tuple(node(n) for n in _field(raw, "nodes", list, where)),
        key=_field(raw, "key", str, where),
        image=_field(raw, "image", str, where),
        asd_digests={str(k): str(v) for k, v in digests.items()},
    )
