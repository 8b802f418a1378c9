"""MkDocs hook: links from the manual to repository files outside docs/.

Some pages link to files that live next to the code they describe, not in docs/: the benchmark
report `bench/REPORT.md` and its plots, `security/REPORT.md`. MkDocs only knows files under
docs/, so in strict mode each such link would fail the build. This hook:

- drops MkDocs' "not found among documentation files" warning for a link whose target is an
  existing file of this repository outside docs/ (a missing file, or a path leaving the
  repository, keeps the warning and so still fails `--strict`);
- copies each such file into the built site under `_repository/<path>` and points the page's
  `href`/`src` there, so the links and images work in the site as they do on a Git host.

Links and #anchors in README.md and docs/ are checked independently by tests/test_docs.py.
"""

from __future__ import annotations

import logging
import posixpath
import re
import shutil
from pathlib import Path
from typing import Any

REPOSITORY_PREFIX = "_repository"
NOT_FOUND = re.compile(
    r"^Doc file '(?P<page>[^']+)' contains a link '(?P<url>[^']+)', but the target"
    r"(?: '[^']+')? is not found among documentation files\."
)
# A relative href/src in a page's HTML (no scheme, not absolute).
HREF_OR_SRC = re.compile(
    r'(?P<attr>\b(?:href|src))="(?P<url>(?![a-z][a-z0-9+.-]*:|/)[^"#?]+)(?P<rest>[#?][^"]*)?"'
)

_docs_dir: Path | None = None
_repo_dir: Path | None = None
# Repository-relative paths of the files outside docs/ that pages link to: copied into the site.
_copies: set[str] = set()


def _repository_file(page_src_uri: str, url: str) -> str | None:
    """The repository-relative path `url` (relative to the page) names, if it is a file outside
    docs/ and inside the repository; None otherwise."""
    if _docs_dir is None or _repo_dir is None or "://" in url or url.startswith("/"):
        return None
    path = url.split("#", 1)[0].split("?", 1)[0]
    if not path:
        return None
    target = (_docs_dir / posixpath.dirname(page_src_uri) / path).resolve()
    if not target.is_file() or target.is_relative_to(_docs_dir):
        return None
    if not target.is_relative_to(_repo_dir):
        return None
    return target.relative_to(_repo_dir).as_posix()


class _RepositoryLinkFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        match = NOT_FOUND.match(record.getMessage())
        return match is None or _repository_file(match["page"], match["url"]) is None


_FILTER = _RepositoryLinkFilter()


def on_config(config: Any) -> Any:
    global _docs_dir, _repo_dir
    _docs_dir = Path(config["docs_dir"]).resolve()
    _repo_dir = Path(config["config_file_path"]).resolve().parent
    _copies.clear()
    logger = logging.getLogger("mkdocs.structure.pages")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return config


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    # Links MkDocs resolved now point at site URLs (a page's directory, a copied file under
    # docs/); those it could not resolve are left as written, relative to the Markdown file.
    def rewrite(match: re.Match[str]) -> str:
        relative = _repository_file(page.file.src_uri, match["url"])
        if relative is None:
            return match[0]
        _copies.add(relative)
        # page.url is "" for the home page, "name/" with directory URLs, "name.html" without.
        depth = page.url.count("/")
        url = "../" * depth + f"{REPOSITORY_PREFIX}/{relative}"
        return f'{match["attr"]}="{url}{match["rest"] or ""}"'

    return HREF_OR_SRC.sub(rewrite, html)


def on_post_build(config: Any) -> None:
    assert _repo_dir is not None
    site = Path(config["site_dir"])
    for relative in sorted(_copies):
        target = site / REPOSITORY_PREFIX / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_repo_dir / relative, target)
