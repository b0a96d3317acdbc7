"""Action keys and decisions: what changes a key, and the reason given for each rerun."""

from __future__ import annotations

from typing import Any

import pytest

from plait.digest import Digest
from plait.model import Action
from plait.planner import decide, request
from plait.request import Input, key_of
from plait.store import CachedResult, LastBuild, Output

D1 = Digest("1" * 64, 1)
D2 = Digest("2" * 64, 2)
TOOL = Digest("t" * 64, 9)
BASE = Action("a", ("cc", "-c", "a.c"), ("a.c", "gen.h"), ("a.o",), {"LANG": "C"})


def material(
    action: Action = BASE,
    inputs: dict[str, Digest] | None = None,
    tool: Digest | None = TOOL,
    executable: frozenset[str] = frozenset(),
    toolchain: str = "t1",
) -> dict[str, Any]:
    given = inputs or {"a.c": D1, "gen.h": D1}
    files = {p: Input(d, p in executable) for p, d in given.items()}
    return request(action, files, tool, {"/opt/cc": toolchain}).material()


def with_(**changes: Any) -> Action:
    fields = {**BASE.__dict__, **changes}
    return Action(**fields)


@pytest.mark.parametrize(
    "changed",
    [
        material(with_(argv=("cc", "-O2", "-c", "a.c"))),
        material(with_(env={"LANG": "fr"})),
        material(tool=D2),
        material(inputs={"a.c": D2, "gen.h": D1}),
        material(
            with_(inputs=("a.c", "gen.h", "more.h")), inputs={"a.c": D1, "gen.h": D1, "more.h": D1}
        ),
        material(with_(outputs=("a.o", "a.d"))),
        material(executable=frozenset({"a.c"})),
        material(toolchain="t2"),
    ],
    ids=["argv", "env", "tool", "input content", "input added", "outputs", "executable", "tools"],
)
def test_any_change_to_what_an_action_computes_from_changes_its_key(
    changed: dict[str, Any],
) -> None:
    assert key_of(changed) != key_of(material())


def test_the_same_material_gives_the_same_key() -> None:
    assert key_of(material()) == key_of(material())
    # Input order in the mapping does not matter; argv order does.
    assert key_of(material(inputs={"gen.h": D1, "a.c": D1})) == key_of(material())


def last(m: dict[str, Any]) -> LastBuild:
    return LastBuild(key_of(m), m, 1.0)


PRODUCER = {"gen.h": "generate"}


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (material(with_(argv=("cc", "-O3", "-c", "a.c"))), "command changed"),
        (material(with_(env={"LANG": "fr"})), "environment changed"),
        (material(tool=D2), "tool changed"),
        (material(toolchain="t2"), "toolchain changed"),
        (material(inputs={"a.c": D2, "gen.h": D1}), "input 'a.c' changed"),
        (
            material(inputs={"a.c": D1, "gen.h": D2}),
            "dependency 'generate' produced different output 'gen.h'",
        ),
        (material(with_(outputs=("b.o",))), "declared outputs changed"),
        (material(executable=frozenset({"gen.h"})), "an input's executable bit changed"),
    ],
)
def test_every_rerun_has_a_reason(now: dict[str, Any], reason: str) -> None:
    d = decide(BASE, now, None, {}, last(material()), PRODUCER)
    assert (d.outcome, d.reason) == ("run", reason)


def test_never_built() -> None:
    assert decide(BASE, material(), None, {}, None, PRODUCER).reason == "never built"


def cached() -> CachedResult:
    return CachedResult((Output("a.o", D1, False),), 1.0)


def test_cached_with_outputs_in_place_is_up_to_date() -> None:
    m = material()
    d = decide(BASE, m, cached(), {"a.o": D1}, last(m), PRODUCER)
    assert (d.outcome, d.reason) == ("up-to-date", "up to date")


@pytest.mark.parametrize(("tree", "state"), [(None, "missing"), (D2, "modified")])
def test_a_missing_or_modified_output_is_restored(tree: Digest | None, state: str) -> None:
    m = material()
    d = decide(BASE, m, cached(), {"a.o": tree}, last(m), PRODUCER)
    assert (d.outcome, d.reason) == ("restore", f"output 'a.o' {state}")


def test_a_result_whose_blobs_are_gone_runs_again() -> None:
    m = material()
    d = decide(BASE, m, cached(), {"a.o": None}, last(m), PRODUCER, blobs_present=False)
    assert (d.outcome, d.reason) == ("run", "not in the store")


def test_a_result_whose_blob_was_damaged_runs_again_and_says_so() -> None:
    m = material()
    d = decide(
        BASE, m, cached(), {"a.o": None}, last(m), PRODUCER, blobs_present=False, damaged="a.o"
    )
    assert (d.outcome, d.reason) == ("run", "the store's copy of 'a.o' was damaged (removed)")


def test_an_action_without_outputs_always_runs() -> None:
    loader = with_(outputs=())
    m = material(loader)
    d = decide(loader, m, None, {}, last(m), PRODUCER)
    assert d.outcome == "run"
    assert "no outputs" in d.reason
