"""Warnings of a Lisp build, reconciled once at the end (POIU's deferred warnings): each compile
records its warnings, the functions and variables it uses but does not know, and the functions and
variables it defines; an undefined one is reported only if no file of the build defines it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plait.build import Report
from plait.store import Output, Store

if TYPE_CHECKING:
    from plait.asdf import AsdfBuild
    from plait.asdf.graph import Translation

MAX_SHOWN = 10


@dataclass
class Summary:
    # file -> (file:line:col, text) of each full WARNING
    warnings: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    style: dict[str, int] = field(default_factory=dict)  # file -> style-warning count
    undefined: dict[str, list[str]] = field(default_factory=dict)  # function -> files using it
    undefined_variables: dict[str, list[str]] = field(default_factory=dict)  # the same


def reconcile(records: dict[str, dict[str, Any]]) -> Summary:
    """`records` maps a source file to what its compile recorded."""
    summary = Summary()
    defined: set[str] = set()
    variables: set[str] = set()
    for record in records.values():
        defined.update(record.get("defined", ()))
        variables.update(record.get("defined-variables", ()))
    for source, record in sorted(records.items()):
        texts = [
            (w.get("where", source), w["text"])
            for w in record.get("warnings", ())
            if w["kind"] == "warning"
        ]
        styles = sum(1 for w in record.get("warnings", ()) if w["kind"] == "style-warning")
        if texts:
            summary.warnings[source] = texts
        if styles:
            summary.style[source] = styles
        for name in record.get("undefined", ()):
            if name not in defined:
                summary.undefined.setdefault(name, []).append(source)
        for name in record.get("undefined-variables", ()):
            if name not in variables:
                summary.undefined_variables.setdefault(name, []).append(source)
    return summary


def records(
    t: Translation, store: Store, produced: Mapping[str, Output], report: Report
) -> dict[int, dict[str, Any]]:
    """What each builder of the build recorded (compile.lisp's warnings file), by node."""
    found: dict[int, dict[str, Any]] = {}
    for node_id, action in t.actions.items():
        if action.name not in report.results:
            continue
        out = produced.get(t.warnings_output(t.nodes[node_id]))
        if out is not None and store.has_blob(out.digest):
            found[node_id] = json.loads(store.blob_path(out.digest).read_text())
    return found


def collect(
    asdf: AsdfBuild, store: Store, produced: Mapping[str, Output], report: Report
) -> dict[str, dict[str, Any]]:
    """The builders' records, by the source file each compiled."""
    t = asdf.translation
    return {
        (t.nodes[i].inputs or (t.actions[i].name,))[0]: record
        for i, record in records(t, store, produced, report).items()
    }


def lines(summary: Summary) -> Iterator[str]:
    if summary.warnings or summary.style:
        n_warn = sum(len(v) for v in summary.warnings.values())
        n_style = sum(summary.style.values())
        files = len(set(summary.warnings) | set(summary.style))
        yield (
            f"plait: {n_warn} warning{'s' * (n_warn != 1)} and {n_style} style-warning"
            f"{'s' * (n_style != 1)} in {files} file{'s' * (files != 1)}"
        )
        for texts in summary.warnings.values():
            for where, text in texts[:MAX_SHOWN]:
                first = text.strip().splitlines()[0] if text.strip() else text
                yield f"  {where}: warning: {first}"
        for source, count in summary.style.items():
            yield f"  {source}: {count} style-warning{'s' * (count != 1)}"
    for name, users in sorted(summary.undefined.items()):
        yield f"plait: undefined function {name}, used in {', '.join(users)}"
    for name, users in sorted(summary.undefined_variables.items()):
        yield f"plait: undefined variable {name}, used in {', '.join(users)}"


def summarize(
    asdf: AsdfBuild, store: Store, produced: Mapping[str, Output], report: Report
) -> list[str]:
    return list(lines(reconcile(collect(asdf, store, produced, report))))
