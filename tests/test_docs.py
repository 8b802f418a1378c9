"""The manual: `mkdocs build --strict` passes, and every link in README.md and docs/ resolves.

Links are read from the Markdown rendered with the extensions of mkdocs.yml (so code blocks
and code spans are not links, and reference-style links are): every `<a href>` and `<img src>`.
A relative target must be a file or directory inside the repository; a `#fragment` must be an
id of the target Markdown file as MkDocs renders it (headings slugified by its `toc`
extension, `{#id}` attributes). External links are never fetched: they must be listed in
ALLOWED_EXTERNAL_LINKS.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import markdown
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_BYTES = 15_000
# External links the README and the manual may contain (they are not fetched).
ALLOWED_EXTERNAL_LINKS = {
    "https://honcho.readthedocs.io/",
}
# Hosts the built site may load a stylesheet, script, font or image from: none.
LOADING_TAG = re.compile(
    r"<(?:link|script|img|iframe|source)\b[^>]*\b(?:href|src)=[\"'](?P<url>(?:https?:)?//[^\"']+)",
    re.IGNORECASE,
)


def markdown_files() -> list[Path]:
    return [README, *sorted(path for path in DOCS.rglob("*.md") if "hooks" not in path.parts)]


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# --- reading links and ids the way MkDocs does --------------------------------------------------


@cache
def markdown_config() -> tuple[list[str], dict[str, dict]]:
    """The Markdown extensions of mkdocs.yml with their settings."""
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    names: list[str] = []
    settings: dict[str, dict] = {}
    for entry in config.get("markdown_extensions", []):
        if isinstance(entry, str):
            names.append(entry)
        else:
            ((name, options),) = entry.items()
            names.append(name)
            settings[name] = dict(options or {})
    # Permalinks are self-links MkDocs adds to every heading, not links of the text.
    settings.setdefault("toc", {})["permalink"] = False
    return names, settings


def render(text: str) -> str:
    names, settings = markdown_config()
    return markdown.Markdown(extensions=names, extension_configs=settings).convert(text)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (kind, url)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "a" and values.get("name"):
            self.ids.add(values["name"])
        if tag == "a" and values.get("href") is not None:
            self.links.append(("link", values["href"] or ""))
        if tag == "img" and values.get("src") is not None:
            self.links.append(("image", values["src"] or ""))


def collect(path: Path) -> _Collector:
    collector = _Collector()
    collector.feed(render(path.read_text(encoding="utf-8")))
    return collector


@cache
def ids_of(path: Path) -> frozenset[str]:
    return frozenset(collect(path).ids)


@dataclass(frozen=True)
class Broken:
    path: Path
    line: int
    url: str
    reason: str

    def __str__(self) -> str:
        try:
            where = relative(self.path)
        except ValueError:
            where = str(self.path)
        return f"{where}:{self.line}: {self.url!r}: {self.reason}"


FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+).+?\1")


def searchable_lines(text: str) -> list[str]:
    """The file's lines with code blocks and code spans blanked (they hold no links)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else CODE_SPAN.sub("", line))
    return lines


def line_of(lines: list[str], url: str, start: int) -> int:
    """1-based number of the first line at or after `start` that holds `url` as a link target
    (`](url`, `]: url` or `<url>`), else that contains it at all; 0 when none does."""
    written = {url, url.replace("&", "&amp;")}
    as_target = [form.format(u) for u in written for form in ("]({}", "]: {}", "<{}>")]
    for candidates in (as_target, list(written)):
        for number in [*range(start, len(lines)), *range(start)]:
            if any(candidate in lines[number] for candidate in candidates):
                return number + 1
    return 0


def check_target(path: Path, url: str, root: Path) -> str | None:
    """Why `url` (found in `path`) does not resolve, or None when it does."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        if url in ALLOWED_EXTERNAL_LINKS:
            return None
        return "external link not in ALLOWED_EXTERNAL_LINKS of tests/test_docs.py (not fetched)"
    if parts.scheme or parts.netloc:
        return f"unsupported link scheme {parts.scheme or '//'!r}"
    if parts.path.startswith("/"):
        return "absolute path: link relative to the file instead"
    target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
    if not target.is_relative_to(root):
        return "points outside the repository"
    if not target.exists():
        return f"no such file: {target.relative_to(root).as_posix()}"
    if parts.fragment:
        if target.suffix != ".md":
            return "#anchor on a file that is not Markdown"
        anchor = unquote(parts.fragment)
        if anchor not in ids_of(target):
            known = ", ".join(sorted(ids_of(target))) or "none"
            return (
                f"no heading or id {anchor!r} in {target.relative_to(root).as_posix()} "
                f"(ids there: {known})"
            )
    return None


def broken_links(path: Path, root: Path = REPO) -> Iterator[Broken]:
    lines = searchable_lines(path.read_text(encoding="utf-8"))
    position = 0
    for kind, url in collect(path).links:
        line = line_of(lines, url, position)
        position = max(line - 1, 0)
        reason = "empty link" if not url else check_target(path, url, root)
        if reason:
            yield Broken(path, line, url, f"{kind}: {reason}")


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", markdown_files(), ids=relative)
def test_every_link_resolves(path: Path) -> None:
    broken = [str(problem) for problem in broken_links(path)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_is_at_most_15_kb() -> None:
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; keep it ≤ {README_MAX_BYTES}"


def test_the_checker_catches_missing_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.md").write_text("# A page\n\n## Explicit id {#custom}\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\n## Some heading: with punctuation!\n\n"
        "[ok](sub/page.md) [ok](sub/page.md#a-page) [ok](sub/page.md#custom)\n"
        "[ok](#some-heading-with-punctuation) [ok](sub/)\n"
        "`[not a link](nowhere.md)`\n\n"
        "[missing](nowhere.md)\n"
        "[bad anchor](sub/page.md#nope)\n"
        "![missing image](img/none.png)\n"
        "[outside](../../etc/passwd)\n"
        "[web](https://example.com/)\n"
    )
    found = [(problem.line, problem.url) for problem in broken_links(doc, root=tmp_path)]
    assert found == [
        (9, "nowhere.md"),
        (10, "sub/page.md#nope"),
        (11, "img/none.png"),
        (12, "../../etc/passwd"),
        (13, "https://example.com/"),
    ]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("docs-site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--config-file", "mkdocs.yml", "--site-dir", site],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}{done.stderr}"
    return site


def test_mkdocs_strict_build_passes(built_site: Path) -> None:
    assert (built_site / "index.html").is_file()
    assert (built_site / "development" / "index.html").is_file()
    # Files outside docs/ that pages link to are copied in (docs/hooks/repository_links.py).
    assert (built_site / "_repository" / "bench" / "REPORT.md").is_file()


def test_the_site_loads_nothing_from_other_hosts(built_site: Path) -> None:
    found = [
        f"{page.relative_to(built_site)}: {match['url']}"
        for page in sorted(built_site.rglob("*.html"))
        for match in LOADING_TAG.finditer(page.read_text(encoding="utf-8"))
    ]
    assert not found, "the site loads from other hosts:\n" + "\n".join(found)
