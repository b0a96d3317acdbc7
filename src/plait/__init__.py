"""plait: a parallel, sandboxed, content-addressed build system on ASDF 3's action graph.

A Plaitfile may `from plait import ...` what it needs; the same names are also predefined in it.
They load when first asked for: `python -m plait` imports this package before it can answer a
signal, so the package itself imports nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.components import Component, Module, SourceFile, StaticFile, System
    from plait.operations import (
        CompileOp,
        Downward,
        LoadOp,
        Operation,
        PrepareOp,
        Selfward,
        Sideway,
        TestOp,
        Upward,
    )
    from plait.plaitfile import action, asdf_system, defsystem, module, static_file

_WHERE = {
    **dict.fromkeys(("Component", "Module", "SourceFile", "StaticFile", "System"), "components"),
    **dict.fromkeys(
        (
            "CompileOp",
            "Downward",
            "LoadOp",
            "Operation",
            "PrepareOp",
            "Selfward",
            "Sideway",
            "TestOp",
            "Upward",
        ),
        "operations",
    ),
    **dict.fromkeys(("action", "asdf_system", "defsystem", "module", "static_file"), "plaitfile"),
}

__all__ = [
    "CompileOp",
    "Component",
    "Downward",
    "LoadOp",
    "Module",
    "Operation",
    "PrepareOp",
    "Selfward",
    "Sideway",
    "SourceFile",
    "StaticFile",
    "System",
    "TestOp",
    "Upward",
    "action",
    "asdf_system",
    "defsystem",
    "module",
    "static_file",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'plait' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"plait.{where}"), name)
    globals()[name] = value
    return value
