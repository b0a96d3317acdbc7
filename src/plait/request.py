"""What a builder asks an executor to run, in content terms, and the key computed from it.

A request names no file of the machine that made it: each input is a path in the command's view
and the digest of what must be there. So any executor that can get the content (the local store
now, a remote CAS next) runs the same request, and the key is computed from the request alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plait import digest
from plait.digest import Digest

# Bumped when the key's material changes meaning: every stored result is then rebuilt.
KEY_VERSION = 2


@dataclass(frozen=True)
class Input:
    digest: Digest
    executable: bool = False


@dataclass(frozen=True)
class Request:
    """A command, the content it reads and the files it must leave.

    An input's path is where the command finds it: relative, under its working directory;
    absolute, at that path (a source outside the project, which the directory sandbox reads
    where it is and the namespace sandbox binds there). `links` are inputs the command only
    reads, which may be read-only links to their content. `tool` is the digest of the program
    argv[0] names when it is not an input; `named` maps words of the argv that name a file by
    what it is (a Lisp core) to that name, which the key holds instead. `toolchain` maps each
    absolute path of the tools it runs beyond its program to the digest of what is there: the
    executor needs them at those paths. `platform` is what a remote worker must offer to run
    it, outside the key (the toolchain's digests are in it)."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    inputs: Mapping[str, Input]
    outputs: tuple[str, ...]
    links: frozenset[str] = frozenset()
    tool: Digest | None = None
    named: Mapping[str, str] = field(default_factory=dict)
    toolchain: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, str] = field(default_factory=dict)

    def material(self) -> dict[str, Any]:
        """Everything the command computes from (a constructive trace), as plain JSON data."""
        return {
            "argv": [self.named.get(word, word) for word in self.argv],
            "env": dict(self.env),
            "tool": str(self.tool) if self.tool else None,
            "inputs": {path: str(i.digest) for path, i in self.inputs.items()},
            "executable": sorted(path for path, i in self.inputs.items() if i.executable),
            "outputs": sorted(self.outputs),
            "toolchain": dict(self.toolchain),
        }

    def key(self) -> str:
        return key_of(self.material())


def key_of(material: Mapping[str, Any]) -> str:
    return digest.of_canonical({"v": KEY_VERSION, **material})
