"""Each SBCL internal plait's Lisp drivers use, through sbcl.lisp, the one file that names them:
an SBCL that changes one fails here, by name."""

from __future__ import annotations

import subprocess

import pytest

from plait.asdf.dump import lisp_file
from tests.support import DATA

pytestmark = pytest.mark.lisp

EXPECTED = {
    "fork-and-wait": "7",
    "new-session": "0",
    "getpid": "T",
    "kill-process": "-9",
    "change-directory": "(T NIL)",
    "open-redirect-write-close": '"via dup2\n"',
    "open-fd-missing": "NIL",
    "pipe-and-streams": '(T "through the pipe")',
    "close-on-exec": "(0 -1)",
    "environment": "0",
    "join-namespace-of-a-plain-file": "NIL",
    "namespace-parent-and-identity": "(T T NIL)",
    "other-threads-after-stop": "NIL",
    "start-finalizer": "T",
    "runtime-variable": "(T NIL)",
    "set-runtime-int": "(T NIL)",
    "set-runtime-word": "T",
    "keep-freed-pages-mapped": "T",
    "dynamic-usage": "T",
    "cpu-seconds-and-faults": "(T T)",
    # Outside a compile no position; inside, where the bad binding (x 1 2) starts.
    "error-context": '(NIL ((20 "bad")))',
    # The reader's end of file, wrapped twice, at line 3, column 0.
    "reader-error": "(T T (3 . 0))",
    "undefined-names": "((PLAIT-NO-SUCH-FUNCTION) (*PLAIT-NO-SUCH-VARIABLE*) NIL)",
    "variable-defined-p": "(T T T NIL)",
    "type-defined-p": "(T T T NIL)",
    # The same directory, made anew from the namestring.
    "forget-interned-pathnames": "(T NIL)",
    "with-source-namestring": "T",
    # Wrapped once (the second wrap with the tag does nothing): 4 * 10 + 1.
    "wrap-function": "(T NIL 41 NIL)",
    "fasl-header-ok-p": "(T NIL)",
}


@pytest.fixture(scope="module")
def said(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    scratch = tmp_path_factory.mktemp("internals")
    script = DATA / "sbcl" / "internals.lisp"
    result = subprocess.run(
        ["sbcl", "--script", str(script), str(lisp_file("sbcl.lisp")), str(scratch)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines: dict[str, str] = {}
    name = ""
    for line in result.stdout.splitlines():
        if line.startswith(";") or not line:
            continue  # the compiler's reports
        head, _, rest = line.partition(" ")
        if head in EXPECTED:
            name = head
            lines[name] = rest
        elif name:
            lines[name] += "\n" + line
    return lines


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_internal_does_what_its_name_says(said: dict[str, str], name: str) -> None:
    assert said.get(name) == EXPECTED[name]


def test_no_driver_names_an_internal_itself() -> None:
    """Only sbcl.lisp names SBCL's internal packages (a comment may mention one)."""
    internal = [
        *("sb-c:", "sb-int:", "sb-kernel:", "sb-sys:", "sb-unix:", "sb-alien:"),
        *("sb-vm:", "sb-fasl:", "sb-impl:", "sb-thread:"),
    ]
    for path in sorted(lisp_file("sbcl.lisp").parent.glob("*.lisp")):
        if path.name == "sbcl.lisp":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split(";", 1)[0].lower()
            assert not any(word in code for word in internal), f"{path.name}:{number}: {line}"
