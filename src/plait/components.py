"""Components: systems, modules and files, after ASDF's defsystem. A new kind of file is a subclass
that says its type, its output files and its command for each operation."""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Mapping, Sequence
from typing import ClassVar

from plait.context import caller_location
from plait.errors import BuildDescriptionError, Location
from plait.operations import CompileOp, LoadOp, Operation, TestOp


class Component:
    """A node of a system tree. Subclasses override `output_files`, `command` and `input_files`."""

    type: ClassVar[str | None] = None  # the file extension, as in ASDF's source-file-type

    def __init__(
        self,
        name: str,
        *,
        depends_on: Sequence[str] = (),
        pathname: str | None = None,
        env: Mapping[str, str] | None = None,
        location: Location | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise BuildDescriptionError(
                f"a component name must be a non-empty string, not {name!r}",
                hint='name it as ASDF would, e.g. "main" for main.c',
                location=location,
            )
        self.name = name
        self.depends_on = tuple(depends_on)
        self._pathname = pathname
        self.env: dict[str, str] = dict(env or {})
        self.location = location or caller_location()
        self.parent: Module | None = None
        self.children: list[Component] = []
        self._serial_deps: list[Component] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    @property
    def path(self) -> str:
        """The component's name path, e.g. 'hello/src/main'."""
        return f"{self.parent.path}/{self.name}" if self.parent else self.name

    @property
    def directory(self) -> str:
        """The directory children's pathnames are relative to ('' is the project root)."""
        return posixpath.dirname(self.pathname)

    @property
    def pathname(self) -> str:
        base = self.parent.directory if self.parent else ""
        if self._pathname is not None:
            own = self._pathname
        else:
            own = self.name + (f".{self.type}" if self.type else "")
        return posixpath.normpath(posixpath.join(base, own)) if base else posixpath.normpath(own)

    def system(self) -> Component:
        return self.parent.system() if self.parent else self

    def resolved_depends_on(self) -> list[Component]:
        """depends_on names resolved among siblings (or, for a system, among systems)."""
        found: list[Component] = []
        for name in self.depends_on:
            found.append(self.find_sibling(name))
        return [*self._serial_deps, *found]

    def find_sibling(self, name: str) -> Component:
        if self.parent is None:
            raise BuildDescriptionError(
                f"'{self.name}' depends on '{name}', but a top-level component has no siblings",
                hint="put it in a system (defsystem) with the components it depends on",
                location=self.location,
            )
        for sibling in self.parent.children:
            if sibling.name == name and sibling is not self:
                return sibling
        names = [c.name for c in self.parent.children if c is not self]
        close = difflib.get_close_matches(name, names, n=1)
        raise BuildDescriptionError(
            f"component '{self.path}' depends on unknown component '{name}'",
            hint=f"did you mean '{close[0]}'?"
            if close
            else f"the components of '{self.parent.path}' are: " + ", ".join(names),
            location=self.location,
        )

    # -- what each operation does on this component (override in a kind) ---------------

    def input_files(self, op: Operation) -> list[str]:
        """Files the action reads besides what its dependencies provide."""
        if isinstance(op, LoadOp):
            return self.output_files(CompileOp())
        return []

    def output_files(self, op: Operation) -> list[str]:
        return []

    def command(self, op: Operation, inputs: Sequence[str]) -> list[str] | None:
        """The argv that performs `op`, given every file the action can see; None: nothing."""
        return None

    def extra_depends_on(self, op: Operation) -> list[tuple[Operation, Component]]:
        """Dependencies beyond the operation's propagation rules (ASDF's :in-order-to)."""
        return []

    def component_depends_on(self, op: Operation) -> list[tuple[Operation, Component]]:
        return [*op.depends_on(self), *self.extra_depends_on(op)]


class Module(Component):
    """A component with children; with `serial`, each child depends on all the earlier ones."""

    def __init__(
        self,
        name: str,
        *,
        components: Sequence[Component] = (),
        serial: bool = False,
        **kwargs: object,
    ) -> None:
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self.serial = serial
        seen: dict[str, Component] = {}
        for child in components:
            if not isinstance(child, Component):
                raise BuildDescriptionError(
                    f"component of '{name}' is not a component: {child!r}", location=self.location
                )
            if child.parent is not None:
                raise BuildDescriptionError(
                    f"component '{child.name}' is in two modules",
                    hint="make a new component for each place it is used",
                    location=child.location,
                )
            if child.name in seen:
                raise BuildDescriptionError(
                    f"component name '{child.name}' is used twice in '{name}'",
                    hint="names are unique within a module; give a file's full name, e.g."
                    ' "greet.h", or a `pathname`',
                    location=child.location,
                )
            seen[child.name] = child
            child.parent = self
            if serial:
                child._serial_deps = list(self.children)
            self.children.append(child)

    @property
    def directory(self) -> str:
        return self.pathname

    @property
    def pathname(self) -> str:
        base = self.parent.directory if self.parent else ""
        own = self.name if self._pathname is None else self._pathname
        return posixpath.normpath(posixpath.join(base, own)) if own or base else ""


class System(Module):
    """A top-level module: its depends_on names other systems; `build_operation` is what
    building it by name means (ASDF's default: load-op)."""

    build_operation: ClassVar[type[Operation]] = LoadOp
    # Other operations whose actions the build knows of (`plait build test:NAME`, say).
    operations: ClassVar[tuple[type[Operation], ...]] = (TestOp,)

    def __init__(self, name: str, **kwargs: object) -> None:
        kwargs.setdefault("pathname", "")
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self.registry: Mapping[str, System] = {}

    def find_sibling(self, name: str) -> Component:
        system = self.registry.get(name)
        if system is None:
            close = difflib.get_close_matches(name, list(self.registry), n=1)
            raise BuildDescriptionError(
                f"system '{self.name}' depends on unknown system '{name}'",
                hint=f"did you mean '{close[0]}'?" if close else "define it with defsystem",
                location=self.location,
            )
        return system


class SourceFile(Component):
    """A file that compiles to something; a kind says its `type`, outputs and command.
    As in ASDF, its compile reads its own pathname."""

    def input_files(self, op: Operation) -> list[str]:
        return [self.pathname] if isinstance(op, CompileOp) else super().input_files(op)


class StaticFile(Component):
    """A file that is used as it is: whatever depends on it sees it (a header, a data file)."""

    def input_files(self, op: Operation) -> list[str]:
        return [self.pathname] if isinstance(op, LoadOp) else []
