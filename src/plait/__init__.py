"""plait: a parallel, sandboxed, content-addressed build system on ASDF 3's action graph.

A Plaitfile may `from plait import ...` what it needs; the same names are also predefined in it.
"""

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
