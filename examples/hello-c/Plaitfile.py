"""hello: a C program with a generated header and a test, on plait's ASDF-style layer.

The C kinds below are the whole of plait's C support: each is a few lines of a subclass.
`plait build` builds the program and runs its test; `plait build hello` only builds it.
"""

import posixpath

from plait import (
    CompileOp,
    LoadOp,
    Operation,
    Selfward,
    SourceFile,
    StaticFile,
    System,
    TestOp,
    defsystem,
    module,
)

BUILD = "build"


class CFile(SourceFile):
    """A C source file: compile-op makes its object file, seeing the headers it depends on."""

    type = "c"

    def output_files(self, op: Operation) -> list[str]:
        return [f"{BUILD}/obj/{self.path}.o"] if isinstance(op, CompileOp) else []

    def command(self, op: Operation, inputs: list[str]) -> list[str] | None:
        if not isinstance(op, CompileOp):
            return None
        includes = sorted({"-I" + (posixpath.dirname(p) or ".") for p in inputs if p.endswith(".h")})
        return ["cc", "-O2", "-Wall", *includes, "-c", self.pathname, "-o", *self.output_files(op)]


class GeneratedHeader(SourceFile):
    """A header that a Python script writes from a data file."""

    type = "h"

    def __init__(self, name: str, *, script: str, data: str, **kwargs: object) -> None:
        super().__init__(name, **kwargs)
        self.script, self.data = script, data

    def input_files(self, op: Operation) -> list[str]:
        return [self.script, self.data] if isinstance(op, CompileOp) else super().input_files(op)

    def output_files(self, op: Operation) -> list[str]:
        return [f"{BUILD}/gen/{self.name}.h"] if isinstance(op, CompileOp) else []

    def command(self, op: Operation, inputs: list[str]) -> list[str] | None:
        if not isinstance(op, CompileOp):
            return None
        return ["python3", self.script, self.data, *self.output_files(op)]


class LinkOp(Selfward):
    """Link a program once all its objects are built (they are what load-op would load)."""

    name = "link"
    selfward_operations = (LoadOp,)


class Program(System):
    """A system that links into an executable and is tested by running it."""

    build_operation = LinkOp

    def extra_depends_on(self, op: Operation):
        return [(LinkOp(), self)] if isinstance(op, TestOp) else []

    def input_files(self, op: Operation) -> list[str]:
        if isinstance(op, TestOp):
            return ["tests/check.sh", "tests/expected.txt"]
        return super().input_files(op)

    def output_files(self, op: Operation) -> list[str]:
        if isinstance(op, LinkOp):
            return [f"{BUILD}/{self.name}"]
        if isinstance(op, TestOp):
            return [f"{BUILD}/{self.name}.test.log"]
        return []

    def command(self, op: Operation, inputs: list[str]) -> list[str] | None:
        if isinstance(op, LinkOp):
            objects = [p for p in inputs if p.endswith(".o")]
            return ["cc", "-o", *self.output_files(op), *objects]
        if isinstance(op, TestOp):
            program = self.output_files(LinkOp())[0]
            return ["sh", "tests/check.sh", program, "tests/expected.txt", *self.output_files(op)]
        return None


defsystem(
    "hello",
    class_=Program,
    components=[
        GeneratedHeader("greetings", script="tools/gen_greetings.py", data="data/greetings.txt"),
        module(
            "src",
            components=[
                StaticFile("greet.h"),
                CFile("greet", depends_on=["greet.h"]),
                CFile("main", depends_on=["greet.h"]),
            ],
            depends_on=["greetings"],
        ),
    ],
)
