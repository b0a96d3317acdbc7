"""Where an .asd file defines its systems and their components, and the smallest edit that adds
a name to one's `:depends-on`: a reader of as much Lisp as `defsystem` forms are written in
(lists, strings, symbols, comments, reader prefixes) that keeps each form's place in the text,
so that an edit leaves every other character as the user wrote it."""

from __future__ import annotations

from dataclasses import dataclass, field

from plait.errors import UsageError


@dataclass
class Form:
    """A form's place in the text, [start, end); a list's items, an atom's or string's text."""

    start: int
    end: int
    items: list[Form] | None = None  # None for an atom or a string
    text: str = ""
    string: bool = False

    def name(self) -> str | None:
        """What ASDF makes of the form as a system's or component's name (coerce-name): a
        string as it is, a symbol's name in lower case; None for a list."""
        if self.items is not None:
            return None
        if self.string:
            return self.text
        return self.text.rpartition(":")[2].lower()

    def keyword(self) -> str | None:
        """The form as a keyword, in lower case (`:depends-on`), or None."""
        if self.items is None and not self.string and self.text.startswith(":"):
            return self.text.lower()
        return None


_DELIMITERS = set("()\"';`,") | set(" \t\r\n\f")


class _Reader:
    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.at = 0

    def error(self, what: str, at: int) -> UsageError:
        line = self.text.count("\n", 0, at) + 1
        return UsageError(
            f"{self.path}:{line}: {what}",
            hint="plait reads .asd files to edit them; fix the file, or edit it by hand",
        )

    def skip(self) -> None:
        """Past whitespace and comments."""
        text = self.text
        while self.at < len(text):
            c = text[self.at]
            if c in " \t\r\n\f":
                self.at += 1
            elif c == ";":
                end = text.find("\n", self.at)
                self.at = len(text) if end < 0 else end + 1
            elif text.startswith("#|", self.at):
                depth, i = 0, self.at
                while i < len(text):
                    if text.startswith("#|", i):
                        depth, i = depth + 1, i + 2
                    elif text.startswith("|#", i):
                        depth, i = depth - 1, i + 2
                        if depth == 0:
                            break
                    else:
                        i += 1
                if depth:
                    raise self.error("a #| comment is not closed", self.at)
                self.at = i
            else:
                return

    def forms(self) -> list[Form]:
        found: list[Form] = []
        while True:
            self.skip()
            if self.at >= len(self.text):
                return found
            if self.text[self.at] == ")":
                raise self.error("a ')' closes nothing", self.at)
            found.append(self.form())

    def form(self) -> Form:
        self.skip()
        text, start = self.text, self.at
        if start >= len(text):
            raise self.error("the file ends inside a form", start)
        c = text[start]
        if c == "(":
            self.at += 1
            items: list[Form] = []
            while True:
                self.skip()
                if self.at >= len(text):
                    raise self.error("a '(' is not closed", start)
                if text[self.at] == ")":
                    self.at += 1
                    return Form(start, self.at, items)
                items.append(self.form())
        if c == '"':
            i, chars = start + 1, []
            while i < len(text) and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                if i < len(text):
                    chars.append(text[i])
                i += 1
            if i >= len(text):
                raise self.error("a string is not closed", start)
            self.at = i + 1
            return Form(start, self.at, text="".join(chars), string=True)
        if c in "'`":
            self.at += 1
            return self.prefixed(start)
        if c == ",":
            self.at += 2 if text.startswith(",@", start) else 1
            return self.prefixed(start)
        if c == "#" and start + 1 < len(text):
            d = text[start + 1]
            if d in "'.":  # #'f, #.form
                self.at += 2
                return self.prefixed(start)
            if d in "+-":  # #+feature form: the form, whatever the feature
                self.at += 2
                self.form()
                return self.form()
            if d == "(":
                self.at += 1
                return self.prefixed(start)
            if d in "pP" and text.startswith('"', start + 2):
                self.at += 2
                return self.prefixed(start)
            if d == "\\":  # a character: #\x, #\Space
                self.at = start + 3
                self.atom_end()
                return Form(start, self.at, text=text[start : self.at])
        self.atom_end()
        if self.at == start:
            raise self.error(f"unexpected {c!r}", start)
        return Form(start, self.at, text=text[start : self.at])

    def prefixed(self, start: int) -> Form:
        inner = self.form()
        return Form(start, inner.end, inner.items, inner.text, inner.string)

    def atom_end(self) -> None:
        text = self.text
        while self.at < len(text) and text[self.at] not in _DELIMITERS:
            if text[self.at] == "|":
                end = text.find("|", self.at + 1)
                if end < 0:
                    raise self.error("a |symbol| is not closed", self.at)
                self.at = end + 1
            else:
                self.at += 2 if text[self.at] == "\\" else 1


@dataclass
class Asd:
    """An .asd file's text and where it defines each system and component."""

    path: str
    text: str
    systems: dict[str, Form] = field(default_factory=dict)
    # (system, component path) -> the component's form, e.g. ("alexandria", ("alexandria-2",))
    components: dict[tuple[str, tuple[str, ...]], Form] = field(default_factory=dict)

    def line(self, form: Form) -> int:
        return self.text.count("\n", 0, form.start) + 1

    def form_of(self, system: str, path: tuple[str, ...]) -> Form | None:
        """The defsystem form of `system` (path ()), or its component's form."""
        return self.systems.get(system) if not path else self.components.get((system, path))

    def add_dependency(self, form: Form, dependency: str) -> str:
        """The text with `dependency` added to `form`'s :depends-on (a defsystem or a
        component form): appended inside the list if it has one, else `:depends-on ("x")`
        after its name. Nothing else changes."""
        assert form.items is not None and len(form.items) >= 2
        name = form.items[1]
        options = form.items[2:]
        written = '"' + dependency.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for key, value in zip(options[::2], options[1::2], strict=False):
            if key.keyword() == ":depends-on" and value.items is not None:
                at = value.end - 1
                before = self.text[:at]
                gap = "" if not value.items else " "
                return before + gap + written + self.text[at:]
        return self.text[: name.end] + f" :depends-on ({written})" + self.text[name.end :]


def parse(text: str, path: str) -> Asd:
    """The systems and components `text` (an .asd file's) defines."""
    asd = Asd(path, text)
    for form in _Reader(text, path).forms():
        _find_systems(asd, form)
    return asd


def _find_systems(asd: Asd, form: Form) -> None:
    items = form.items
    if not items:
        return
    head = items[0]
    if head.items is None and not head.string and head.text.lower().endswith("defsystem"):
        name = items[1].name() if len(items) > 1 else None
        if name is not None:
            asd.systems[name] = form
            _find_components(asd, name, (), items[2:])
        return
    for item in items:  # a defsystem inside another form (eval-when, progn)
        _find_systems(asd, item)


def _find_components(asd: Asd, system: str, parent: tuple[str, ...], options: list[Form]) -> None:
    for key, value in zip(options[::2], options[1::2], strict=False):
        if key.keyword() != ":components" or value.items is None:
            continue
        for component in value.items:
            parts = component.items
            if not parts or len(parts) < 2:
                continue
            name = parts[1].name()
            if name is None:
                continue
            path = (*parent, name)
            asd.components[(system, path)] = component
            _find_components(asd, system, path, parts[2:])
