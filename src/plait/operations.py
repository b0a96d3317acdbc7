"""Operations and ASDF 3's propagation rules: which other actions an (operation, component) action
depends on. A Plaitfile adds an operation by subclassing these mixins."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from plait.components import Component

Node = tuple["Operation", "Component"]


class Operation:
    """A kind of work. Instances are interchangeable: an operation is known by its class.

    Invariant (as in ASDF): each mixin lists its own dependencies before those of the mixins after
    it in the method resolution order, so the walk visits them in ASDF's plan order."""

    name: ClassVar[str] = "operation"

    def depends_on(self, component: Component) -> list[Node]:
        """The actions (self, component) depends on, before the component's own additions."""
        return []

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _make(op: type[Operation] | None, default: Operation) -> Operation:
    return op() if op is not None else default


class Downward(Operation):
    """(O, module) depends on (O or `downward_operation`, each child)."""

    downward_operation: ClassVar[type[Operation] | None] = None

    def depends_on(self, component: Component) -> list[Node]:
        op = _make(self.downward_operation, self)
        children = [(op, child) for child in component.children]
        return [*children, *super().depends_on(component)]


class Upward(Operation):
    """(O, component) depends on (O or `upward_operation`, its parent)."""

    upward_operation: ClassVar[type[Operation] | None] = None

    def depends_on(self, component: Component) -> list[Node]:
        parent = component.parent
        up = [(_make(self.upward_operation, self), parent)] if parent is not None else []
        return [*up, *super().depends_on(component)]


class Sideway(Operation):
    """(O, component) depends on (O or `sideway_operation`, each component in its depends_on)."""

    sideway_operation: ClassVar[type[Operation] | None] = None

    def depends_on(self, component: Component) -> list[Node]:
        op = _make(self.sideway_operation, self)
        sideways = [(op, dep) for dep in component.resolved_depends_on()]
        return [*sideways, *super().depends_on(component)]


class Selfward(Operation):
    """(O, component) depends on (each of `selfward_operations`, the same component)."""

    selfward_operations: ClassVar[tuple[type[Operation], ...]] = ()

    def depends_on(self, component: Component) -> list[Node]:
        own = [(op(), component) for op in self.selfward_operations]
        return [*own, *super().depends_on(component)]


class PrepareOp(Upward, Sideway):
    """Everything the component needs is loaded: the parent is prepared, its dependencies loaded."""

    name = "prepare"


class CompileOp(Downward, Selfward):
    name = "compile"
    selfward_operations = (PrepareOp,)


class LoadOp(Downward, Selfward):
    name = "load"
    selfward_operations = (PrepareOp, CompileOp)


PrepareOp.sideway_operation = LoadOp


class TestOp(Selfward):
    name = "test"
    selfward_operations = (LoadOp,)
