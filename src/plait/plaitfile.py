"""The Plaitfile frontend: run a Plaitfile.py, collect its actions and systems, and make the graph.

A Plaitfile's mistakes come back as BuildDescriptionError with the Plaitfile's file:line, never as
a Python traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from plait import context
from plait.components import Component, Module, StaticFile, System
from plait.context import caller_location
from plait.errors import BuildDescriptionError, Location
from plait.expand import expand
from plait.model import Action, Graph, check_path

PLAITFILE = "Plaitfile.py"


class Description:
    """What a Plaitfile declared while it ran."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.graph = Graph()
        self.systems: list[System] = []
        # What the Plaitfile asks of each frontend, by its name: asdf_system("x") -> "asdf".
        self.includes: dict[str, list[str]] = {}


_current: Description | None = None


def _description() -> Description:
    if _current is None:
        raise BuildDescriptionError(
            "plait's build functions can only be called while a Plaitfile is loaded",
            hint="run 'plait build' in the directory that holds Plaitfile.py",
        )
    return _current


# -- the API a Plaitfile sees ----------------------------------------------------------------


def action(
    name: str,
    argv: Sequence[str],
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    after: Sequence[str] = (),
    toolchain: Sequence[str] = (),
) -> Action:
    """A command run with no shell, seeing only `inputs`, that must write `outputs`. An input that
    is another action's output makes an edge; `after` names actions to come after otherwise.
    `toolchain` names, by absolute path, files and directories of the tools the command runs
    beyond its program (a compiler's own directory): their content is part of its key, and the
    namespace sandbox shows them."""
    desc = _description()
    where = caller_location()
    if not isinstance(name, str) or not name:
        raise BuildDescriptionError(
            f"action name must be a non-empty string, not {name!r}",
            hint='name the action, e.g. action("compile-main", [...])',
            location=where,
        )
    _check_strings(argv, f"argv of action '{name}'", where, allow_empty=False)
    _check_strings(inputs, f"inputs of action '{name}'", where)
    _check_strings(outputs, f"outputs of action '{name}'", where)
    _check_strings(after, f"after of action '{name}'", where)
    if env is not None and not (
        isinstance(env, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise BuildDescriptionError(
            f"env of action '{name}' must map strings to strings",
            hint='e.g. env={"LANG": "C"}; read the caller\'s value with os.environ.get',
            location=where,
        )
    for key, value in (env or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise BuildDescriptionError(
                f"env of action '{name}' cannot set {key!r}={value!r}",
                hint="a variable's name is not empty and has no '=' or NUL byte; its value has"
                " no NUL byte",
                location=where,
            )
    _check_strings(toolchain, f"toolchain of action '{name}'", where)
    for path in toolchain:
        if not path.startswith("/") or not Path(path).exists():
            raise BuildDescriptionError(
                f"toolchain path '{path}' of action '{name}' "
                + ("is not absolute" if not path.startswith("/") else "does not exist"),
                hint="name the files or directories of the tools the command runs, by absolute"
                " path (e.g. '/usr/lib/gcc')",
                location=where,
            )
    new = Action(
        name=name,
        argv=tuple(argv),
        inputs=tuple(dict.fromkeys(check_path(p, "input", where) for p in inputs)),
        outputs=tuple(dict.fromkeys(check_path(p, "output", where) for p in outputs)),
        env=dict(env or {}),
        after=tuple(after),
        location=where,
        toolchain=tuple(toolchain),
    )
    return desc.graph.add(new)


def defsystem(
    name: str,
    components: Sequence[Component] = (),
    depends_on: Sequence[str] = (),
    serial: bool = False,
    pathname: str | None = None,
    class_: type[System] = System,
    **kwargs: Any,
) -> System:
    """A system, as ASDF's defsystem: `class_` may be a System subclass of the Plaitfile's."""
    desc = _description()
    where = caller_location()
    if any(s.name == name for s in desc.systems):
        raise BuildDescriptionError(
            f"system '{name}' is defined twice",
            hint="give each system its own name",
            location=where,
        )
    system = class_(
        name,
        components=components,
        depends_on=depends_on,
        serial=serial,
        pathname=pathname if pathname is not None else "",
        location=where,
        **kwargs,
    )
    desc.systems.append(system)
    return system


def module(
    name: str, components: Sequence[Component] = (), serial: bool = False, **kwargs: Any
) -> Module:
    return Module(name, components=components, serial=serial, location=caller_location(), **kwargs)


def static_file(name: str, **kwargs: Any) -> StaticFile:
    return StaticFile(name, location=caller_location(), **kwargs)


def asdf_system(name: str) -> None:
    """Build the ASDF system `name` (found as ASDF finds it) as part of this project."""
    desc = _description()
    if not isinstance(name, str) or not name:
        raise BuildDescriptionError(
            f"asdf_system takes a system name, not {name!r}",
            hint='e.g. asdf_system("alexandria")',
            location=caller_location(),
        )
    desc.includes.setdefault("asdf", []).append(name)


def _check_strings(
    values: object, what: str, where: Location | None, allow_empty: bool = True
) -> None:
    if (
        isinstance(values, str)
        or not isinstance(values, Sequence)
        or not all(isinstance(v, str) for v in values)
    ):
        raise BuildDescriptionError(
            f"{what} must be a list of strings, not {values!r}",
            hint='commands run with no shell: write ["cc", "-c", "a.c"], not "cc -c a.c"',
            location=where,
        )
    if not allow_empty and not values:
        raise BuildDescriptionError(
            f"{what} is empty", hint="give the command to run", location=where
        )
    for v in values:
        if "\0" in v:
            raise BuildDescriptionError(
                f"{what} has a NUL byte in {v!r}",
                hint="a program's arguments and paths cannot hold NUL bytes",
                location=where,
            )


# -- loading -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _loading(desc: Description) -> Iterator[None]:
    global _current
    previous, _current = _current, desc
    context.push(desc.path)
    sys.path.insert(0, str(desc.path.parent))
    try:
        yield
    finally:
        _current = previous
        context.pop()
        with contextlib.suppress(ValueError):
            sys.path.remove(str(desc.path.parent))


def find(directory: Path) -> Path:
    path = directory / PLAITFILE
    if not path.is_file():
        raise BuildDescriptionError(
            f"no {PLAITFILE} in '{directory}'",
            hint="write one, or use -C DIR to build the project in DIR",
        )
    return path


def load(directory: Path) -> Graph:
    """Run the Plaitfile in `directory` and return its frozen action graph."""
    desc = describe(directory)
    freeze(desc.graph, desc.path.parent)
    return desc.graph


def freeze(graph: Graph, root: Path) -> None:
    """Freeze the graph; an input nobody produces must exist (relative to `root`)."""
    wanted = {p for a in graph.actions.values() for p in a.inputs if p not in graph.producer}
    base = str(root) + "/"
    # os.path, not pathlib: this runs for every input of every action on every build.
    graph.freeze(p for p in wanted if os.path.isfile(p if p[0] == "/" else base + p))  # noqa: PTH113


def describe(directory: Path) -> Description:
    """Run the Plaitfile in `directory`: its actions and systems, in a graph not yet frozen."""
    path = find(directory).resolve()
    desc = Description(path)
    try:
        code = compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as e:
        raise BuildDescriptionError(
            f"syntax error: {e.msg}",
            hint="fix the Plaitfile's Python syntax",
            location=Location(str(path), e.lineno or 1),
        ) from None
    # Everything `from plait import ...` gives is predefined: the functions above and the
    # component and operation classes a Plaitfile subclasses.
    import plait

    predefined = {name: getattr(plait, name) for name in plait.__all__}
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": "plaitfile", **predefined}
    with _loading(desc):
        try:
            exec(code, namespace)
            expand(desc.systems, desc.graph)
        except BuildDescriptionError as e:
            e.location = e.location or _innermost(e, path)
            raise
        except (Exception, SystemExit) as e:
            if isinstance(e, SystemExit):
                what = f"called sys.exit({e.code!r})"
                hint = "a Plaitfile only describes the build: raise an exception to stop it"
            else:
                what, hint = (
                    f"raised {type(e).__name__}: {e}",
                    "fix the Plaitfile at the line shown",
                )
            raise BuildDescriptionError(
                f"the Plaitfile {what}", hint=hint, location=_innermost(e, path)
            ) from None
    _check_outputs(desc.graph)
    return desc


def _check_outputs(graph: Graph) -> None:
    """No action may write the Plaitfile, nor a file it also reads: either would replace what
    the user wrote (an output of one action that another reads is an edge)."""
    for a in graph.actions.values():
        if PLAITFILE in a.outputs:
            raise BuildDescriptionError(
                f"action '{a.name}' declares {PLAITFILE} as an output",
                hint="an action may not write the build description; name another output",
                location=a.location,
            )
        both = sorted(set(a.inputs) & set(a.outputs))
        if both:
            raise BuildDescriptionError(
                f"action '{a.name}' declares '{both[0]}' as both an input and an output",
                hint="write the result to a new file: an output replaces what it reads",
                location=a.location,
            )


def _innermost(e: BaseException, path: Path) -> Location | None:
    line = None
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    return Location(str(path), line) if line else None
