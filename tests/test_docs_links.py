"""Every reference in the docs and the code points at something that exists.

* Relative markdown links in README.md, docs/*.md, compat/*.md and
  bench/README.md name an existing file; a ``#fragment`` into a markdown file
  names one of its headings (GitHub's slug) or an explicit ``<a id>``.
* A ``docs/<page>.md`` or ``docs/<page>.md#<anchor>`` named anywhere under
  bullbridge/ or tests/ (comments, docstrings, messages), or in the markdown
  files' text, exists with that heading.
* A test named in the docs as ``tests/<file>.py::<name>`` exists.
* Every section of docs/port-differences.md says what the port, Node and
  bullbridge do and which test pins it.

The checkers work on text, so the last tests feed them broken samples: they
must report each one.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN = sorted(
    {ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "compat").glob("*.md")}
)
CODE = sorted(p for d in ("bullbridge", "tests") for p in (ROOT / d).rglob("*.py"))
PORT_DIFFERENCES = ROOT / "docs" / "port-differences.md"

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+<?([^\s>]+)>?")
_INLINE_CODE = re.compile(r"(`+).*?\1")
_HTML_ANCHOR = re.compile(r"<a\s+(?:[^>]*\s)?(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:...
_DOCS_PATH = re.compile(r"(?<![\w/.-])(docs/[\w./-]+?\.md)(?:#([\w-]+))?")
_TEST_REF = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text, lower-cased, without
    punctuation, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts as its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors_of(text: str) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose_lines(text):
        found.update(_HTML_ANCHOR.findall(line))
        m = _HEADING.match(line)
        if m:
            base = slug(m[2])
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")  # GitHub numbers repeated headings
    return found


@cache
def anchors(path: Path) -> frozenset[str]:
    return frozenset(anchors_of(path.read_text(encoding="utf-8")))


def links_of(text: str) -> list[str]:
    targets = []
    for line in _prose_lines(text):
        m = _REF_DEF.match(line)
        if m:
            targets.append(m[1])
        targets += _LINK.findall(_INLINE_CODE.sub("", line))
    return targets


def link_problems(text: str, source: Path) -> list[str]:
    """Relative links of ``text`` (the content of ``source``) that lead nowhere."""
    problems = []
    for target in links_of(text):
        if _EXTERNAL.match(target):
            continue
        path_part, _, fragment = target.partition("#")
        if not path_part:
            if fragment not in anchors_of(text):
                problems.append(f"{_rel(source)}: ({target}): no heading #{fragment} on this page")
            continue
        dest = (source.parent / path_part).resolve()
        if not dest.exists():
            problems.append(f"{_rel(source)}: ({target}): no file {_rel(dest)}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{_rel(source)}: ({target}): no heading #{fragment} in {_rel(dest)}")
    return problems


def docs_path_problems(text: str, where: str) -> list[str]:
    """``docs/<page>.md[#anchor]`` mentions (paths from the repository root) that lead nowhere."""
    problems = []
    for m in _DOCS_PATH.finditer(text):
        page, fragment = ROOT / m[1], m[2]
        line = text.count("\n", 0, m.start()) + 1
        if not page.is_file():
            problems.append(f"{where}:{line}: {m[0]}: no such page")
        elif fragment and fragment not in anchors(page):
            problems.append(f"{where}:{line}: {m[0]}: no heading #{fragment} in {m[1]}")
    return problems


def cited_test_problems(text: str, where: str) -> list[str]:
    """``tests/<file>.py::<name>`` mentions whose test does not exist."""
    problems = []
    for m in _TEST_REF.finditer(text):
        path = ROOT / m[1]
        if not path.is_file():
            problems.append(f"{where}: {m[0]}: no file {m[1]}")
        elif not re.search(rf"^\s*(?:async\s+)?def {m[2]}\(", path.read_text(encoding="utf-8"), re.MULTILINE):
            problems.append(f"{where}: {m[0]}: no test {m[2]} in {m[1]}")
    return problems


@pytest.mark.parametrize("page", MARKDOWN, ids=_rel)
def test_markdown_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    problems = link_problems(text, page) + docs_path_problems(text, _rel(page)) + cited_test_problems(text, _rel(page))
    assert not problems, "\n".join(problems)


def test_docs_paths_named_in_code_exist() -> None:
    problems = [p for path in CODE for p in docs_path_problems(path.read_text(encoding="utf-8"), _rel(path))]
    assert not problems, "\n".join(problems)


def test_no_reference_to_documents_outside_the_repository() -> None:
    """docs/port-differences.md replaced an outside measurement document; nothing
    names that document, or the directory beside the repository it lived in."""
    outside = ("FIND" + "INGS", "../" + "shared")
    for path in (*CODE, *MARKDOWN):
        text = path.read_text(encoding="utf-8")
        assert not [o for o in outside if o in text], _rel(path)


def test_every_port_difference_names_the_four_sides() -> None:
    text = PORT_DIFFERENCES.read_text(encoding="utf-8")
    sections = re.split(r"^### ", text, flags=re.MULTILINE)[1:]
    assert len(sections) >= 20
    for section in sections:
        name = section.split("\n", 1)[0]
        assert re.fullmatch(r"[a-z0-9-]+", name), f"section {name!r}: its heading is its anchor, keep it a slug"
        for side in ("**The port:**", "**Node BullMQ", "**bullbridge:**", "**Pinned by:**"):
            assert side in section, f"section {name}: no {side}"
        assert f"[{name}](#{name})" in text, f"section {name} is missing from the index table"


# --- the checkers catch what they should -----------------------------------------------------


def test_slugs_are_githubs() -> None:
    assert slug("Data: the JSON codec") == "data-the-json-codec"
    assert slug("How it differs from the port's Worker") == "how-it-differs-from-the-ports-worker"
    assert slug("`bullbridge worker` and [links](x.md)") == "bullbridge-worker-and-links"
    assert slug("run_in: thread / process") == "run_in-thread--process"
    assert anchors_of('# A\n## A\n```\n# not a heading\n```\n<a id="x"></a>') == {"a", "a-1", "x"}


def test_broken_references_are_reported() -> None:
    d = "docs" + "/"  # spelled apart, so the scan of this file finds only real references
    page = ROOT / "docs" / "sample.md"
    sample = "\n".join(
        [
            "# Sample",
            "[fine](port-differences.md#limits) [fine](#sample) [web](https://example.com/x.md#y)",
            "[gone](no-such-page.md) [bad anchor](port-differences.md#no-such-section) [here](#nowhere)",
            "`[in code](not-a-link.md)`",
            "```",
            "[in a fence](not-a-link-either.md)",
            "```",
        ]
    )
    assert sorted(link_problems(sample, page)) == sorted(
        [
            f"{d}sample.md: (no-such-page.md): no file {d}no-such-page.md",
            f"{d}sample.md: (port-differences.md#no-such-section): no heading #no-such-section in "
            f"{d}port-differences.md",
            f"{d}sample.md: (#nowhere): no heading #nowhere on this page",
        ]
    )

    code = "\n".join(
        [
            f"# fine: {d}port-differences.md#limits, {d}worker.md",
            f'"""see {d}no-such-page.md"""',
            f"# see {d}port-differences.md#no-such-section.",
        ]
    )
    assert docs_path_problems(code, "sample.py") == [
        f"sample.py:2: {d}no-such-page.md: no such page",
        f"sample.py:3: {d}port-differences.md#no-such-section: no heading #no-such-section in {d}port-differences.md",
    ]

    t = "tests" + "/"
    cited = (
        f"`{t}worker/test_limits.py::test_global_rate_limit_set_by_node` "
        f"`{t}worker/test_limits.py::test_that_never_was` `{t}no_such_file.py::test_x`"
    )
    assert cited_test_problems(cited, "sample.md") == [
        f"sample.md: {t}worker/test_limits.py::test_that_never_was: no test test_that_never_was in "
        f"{t}worker/test_limits.py",
        f"sample.md: {t}no_such_file.py::test_x: no file {t}no_such_file.py",
    ]
