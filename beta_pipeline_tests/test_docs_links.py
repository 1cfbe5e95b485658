"""Documentation: every relative link of README.md and docs/*.md resolves in the repository.

A link's file must exist inside the repository and its ``#anchor`` must be the GitHub slug of
a heading of the target Markdown file. README.md stays short (at most ``README_MAX_LINES``)
and keeps the two commands at its top, the test command being the one ``.ci/run`` runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 350

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target); the target may be wrapped in <...> and followed by a title
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files(root: Path = REPO_ROOT) -> list[Path]:
    """README.md, docs/*.md and any benchmarks/*.md."""
    files = [root / "README.md"]
    for folder in ("docs", "benchmarks"):
        files.extend(sorted((root / folder).glob("*.md")))
    return [f for f in files if f.is_file()]


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * 3
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        out.append((number, line))
    return out


def slugify(heading: str) -> str:
    """GitHub's anchor of a heading: text without markup, lower case, punctuation dropped,
    spaces to hyphens."""
    text = _INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Anchors of every heading, with GitHub's -1, -2 suffixes for repeated slugs."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in _prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = slugify(match.group(2))
        if slug in seen:
            seen[slug] += 1
            out.add(f"{slug}-{seen[slug]}")
        else:
            seen[slug] = 0
            out.add(slug)
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of inline links, images and reference definitions, outside
    code blocks and inline code."""
    found: list[tuple[int, str]] = []
    for number, line in _prose_lines(text):
        ref = _REF_DEF.match(line)
        if ref:
            found.append((number, ref.group(1)))
            continue
        bare = _INLINE_CODE.sub("", line)
        found.extend((number, m.group(1)) for m in _LINK.finditer(bare))
    return found


def broken_links(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """One message per relative link of ``path`` that does not resolve inside ``root``."""
    root = root.resolve()
    problems: list[str] = []
    cache: dict[Path, set[str]] = {}
    for number, target in links(path.read_text(encoding="utf-8")):
        where = f"{path.relative_to(root)}:{number}: {target!r}"
        if not target:
            problems.append(f"{where}: empty link")
            continue
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # absolute URL (https:, mailto:): not checked offline
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path.resolve()
        if file_part.startswith("/") or not dest.is_relative_to(root):
            problems.append(f"{where}: outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{where}: no such file")
            continue
        if not anchor:
            continue
        if dest.suffix.lower() != ".md":
            problems.append(f"{where}: anchor on a file that is not Markdown")
            continue
        if dest not in cache:
            cache[dest] = anchors(dest.read_text(encoding="utf-8"))
        if unquote(anchor).lower() not in cache[dest]:
            problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


# -- the checker itself ------------------------------------------------------------------


def test_slugify_follows_github() -> None:
    assert slugify("Two commands") == "two-commands"
    assert slugify("One scheduled day (issue 12)") == "one-scheduled-day-issue-12"
    assert slugify("`beta-pipeline` CLI") == "beta-pipeline-cli"
    assert slugify("Running unattended (daemon, automation, backfills)") == (
        "running-unattended-daemon-automation-backfills"
    )
    assert slugify("Results (CPU, quick budget, seed 0)") == "results-cpu-quick-budget-seed-0"
    assert slugify("Crypto — data and conventions") == "crypto--data-and-conventions"
    assert slugify("[Kalman](x.md) vs *OLS*") == "kalman-vs-ols"


def test_checker_flags_bad_links(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.png").write_bytes(b"")
    (tmp_path / "outside.md").write_text("# Top\n", encoding="utf-8")
    (tmp_path / "docs" / "other.md").write_text(
        "# Other page\n## Part\n## Part\n```\n# not a heading\n```\n", encoding="utf-8"
    )
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "\n".join(
            [
                "# Page",
                "[ok](other.md) [ok](other.md#part-1) [ok](#page) ![img](a.png)",
                "[ok](../outside.md#top) [web](https://example.org/x#y) `[code](missing.md)`",
                "```",
                "[fenced](missing.md)",
                "```",
                "[gone](missing.md)",
                "[bad anchor](other.md#not-a-heading)",
                "[bad local](#nowhere)",
                "[escape](../../etc/passwd)",
                "[png anchor](a.png#x)",
                "[ref]: missing-ref.md",
            ]
        ),
        encoding="utf-8",
    )
    problems = broken_links(page, root=tmp_path)
    assert [p.split(": ", 1)[0] for p in problems] == [
        "docs/page.md:7",
        "docs/page.md:8",
        "docs/page.md:9",
        "docs/page.md:10",
        "docs/page.md:11",
        "docs/page.md:12",
    ], problems
    assert "no such file" in problems[0]
    assert "#not-a-heading" in problems[1]
    assert "outside the repository" in problems[3]


# -- the repository's documentation -----------------------------------------------------


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_docs_exist_and_readme_links_them() -> None:
    pages = sorted((REPO_ROOT / "docs").glob("*.md"))
    assert pages, "docs/*.md is empty"
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    linked = {target.partition("#")[0] for _, target in links(readme)}
    missing = [p.name for p in pages if f"docs/{p.name}" not in linked]
    assert missing == [], f"docs pages not linked from README.md: {missing}"


def test_readme_is_short_and_starts_with_the_two_commands() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    head = "\n".join(lines[:40])
    assert "bash scripts/quickstart.sh" in head
    assert "bash scripts/test.sh" in head
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^bash scripts/test\.sh\b", ci, re.M), ".ci/run no longer runs it"
