"""Links on the course site: a document's links into the repository, pointed at the site's own pages.

The README, the guides and the notebooks link to each other the way the repository lays them out
(``notebooks/05_….ipynb``, ``../exercises/05_….ipynb``, ``docs/grading.md#…``, ``docs/images/map.png``),
as Markdown links, ``<a href>``/``<img src>`` tags or backticked paths. The site lays the same files out
differently (``chapters/``, ``exercises/``, ``images/``), so every link is resolved to the repository
file it names and written again relative to where that file sits on the site:

* a file that has a page on the site (or is an image the site carries) is linked there, anchor kept;
* a backticked path that names such a file becomes a link to it;
* any other target inside the repository (a script, a test, a README with no page) is no page on the
  site, so its link becomes plain code naming the path: it reads, and it never leads to a 404.

Links to other hosts, ``mailto:`` and same-page anchors are left alone; so is everything inside
fenced code blocks and code spans that do not name a page.
"""
from __future__ import annotations

import posixpath
import re
from typing import Mapping
from urllib.parse import urlsplit

# The site's Markdown pages are rewritten by MkDocs (``x.md`` -> ``x.html``); a notebook's Markdown is
# rendered by nbconvert and reaches the browser as written, so notebooks link to the final ``.html``.
PAGE_SUFFIXES = (".md", ".ipynb")

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,}).*?^\1\2[`~]*[ \t]*$", re.MULTILINE | re.DOTALL)
_TOKEN = re.compile(
    r"(?P<link>(?P<bang>!?)\[(?P<text>(?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]"
    r"\(\s*<?(?P<target>[^()\s<>]+(?:\([^()\s]*\))?)>?(?P<title>\s+\"[^\"]*\")?\s*\))"
    r"|(?P<code>`(?P<path>[^`\n]+)`)"
    r"|(?P<tag><(?:a|img)\b[^>]*?\b(?:href|src)=\")(?P<url>[^\"]*)\"",
    re.IGNORECASE,
)
_PATHLIKE = re.compile(r"^[\w.-]+(/[\w.-]+)*(#[\w.-]*)?$")


def _split(target: str) -> tuple[str, str]:
    path, _, fragment = target.partition("#")
    return path, ("#" + fragment if fragment else "")


def _is_external(target: str) -> bool:
    parts = urlsplit(target)
    return bool(parts.scheme or parts.netloc) or target.startswith(("#", "//"))


def resolve(target: str, source: str) -> str | None:
    """The repository path (``a/b.ext``, no anchor) that ``target``, written in the repository file
    ``source``, points at; ``None`` for links to other hosts, same-page anchors and paths above the root."""
    if _is_external(target):
        return None
    path, _ = _split(target)
    path = path.split("?", 1)[0]
    joined = path.lstrip("/") if path.startswith("/") else posixpath.join(posixpath.dirname(source), path)
    normal = posixpath.normpath(joined)
    return None if normal.startswith("..") or normal == "." else normal


def site_href(staged_target: str, staged_source: str) -> str:
    """The href from the staged page ``staged_source`` to the staged file ``staged_target`` (both relative
    to the site's docs folder). Notebook pages get final ``.html`` addresses, Markdown pages MkDocs' form."""
    relative = posixpath.relpath(staged_target, posixpath.dirname(staged_source) or ".")
    if staged_source.endswith(".ipynb"):
        stem, suffix = posixpath.splitext(relative)
        if suffix in PAGE_SUFFIXES:
            relative = stem + ".html"
    return relative


def rewrite(text: str, source: str, staged: str, files: Mapping[str, str], exists=lambda path: False) -> str:
    """Rewrite the Markdown ``text`` of the repository file ``source``, staged on the site as ``staged``.

    ``files`` maps repository paths to the staged paths of everything the site carries (pages and
    images); ``exists(path)`` says whether a repository path that is not on the site is still a file
    or folder of the repository (its links become code; a link that names nothing is left as written,
    so a test can catch it)."""

    def href(target: str) -> str | None:
        repo_path = resolve(target, source)
        if repo_path is None or repo_path not in files:
            return None
        return site_href(files[repo_path], staged) + _split(target)[1]

    def replace(match: re.Match) -> str:
        if match.group("link"):
            target = match.group("target")
            new = href(target)
            if new is not None:
                title = match.group("title") or ""
                return f"{match.group('bang')}[{match.group('text')}]({new}{title})"
            repo_path = resolve(target, source)
            if repo_path is None or match.group("bang") or not exists(repo_path):
                return match.group(0)
            text = match.group("text").strip()
            shown = _split(target)[0]
            if text.strip("`") in (shown, repo_path):
                return f"`{repo_path}`"
            return f"{text} (`{repo_path}`)"
        if match.group("code"):
            path = match.group("path").strip()
            if not _PATHLIKE.match(path) or "." not in posixpath.basename(_split(path)[0]):
                return match.group(0)
            # a backticked path is written from the repository root (as a learner types it) or beside the file
            for candidate in (path, posixpath.join(posixpath.dirname(source), path)):
                repo_path = resolve(candidate, "")
                if repo_path in files and repo_path.endswith(PAGE_SUFFIXES):
                    return f"[`{path}`]({site_href(files[repo_path], staged)}{_split(path)[1]})"
            return match.group(0)
        new = href(match.group("url"))
        return f"{match.group('tag')}{new if new is not None else match.group('url')}\""

    pieces, last = [], 0
    for fence in _FENCE.finditer(text):
        pieces.append(_TOKEN.sub(replace, text[last:fence.start()]))
        pieces.append(fence.group(0))
        last = fence.end()
    pieces.append(_TOKEN.sub(replace, text[last:]))
    return "".join(pieces)
