"""A sample of bench/torture.py: a few trials of each scenario and the whole bad-input
catalogue (the full suite, run on demand, takes its figures to bench/RESULTS.md)."""

from __future__ import annotations

import sys

import pytest

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import torture

pytestmark = pytest.mark.lisp


def test_the_catalogue_has_forty_cases_or_more_with_distinct_names() -> None:
    names = [case.name for case in torture.CATALOGUE]
    assert len(names) >= 40
    assert len(set(names)) == len(names)


def test_a_sample_of_the_torture_suite_holds() -> None:
    tallies = torture.torture(torture.SAMPLE, seed=7, progress=lambda _: None)
    failures = [f"{name}: {f}" for name, t in tallies.items() for f in t.failures]
    assert failures == []
    assert tallies["bad-input catalogue"].tried == len(torture.CATALOGUE)
    assert all(t.tried > 0 for t in tallies.values())
