"""The built HTML book as a reader sees it: no raw TeX, no unresolved reference, no stderr block,
no print-aligned text table, no table wider than the content column.

Run by ``make book-check`` after ``make book-html`` (part of ``make test``); it reads
``_build/book/_build/html`` or the folder in ``LOWRANK_BOOK_HTML``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup, NavigableString

ROOT = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("LOWRANK_BOOK_HTML", ROOT / "_build" / "book" / "_build" / "html"))
PAGES = sorted(
    p for p in HTML.glob("**/*.html") if not {"_static", "_sources", "_images"} & set(p.parts)
)
PAGES = [p for p in PAGES if p.name not in ("genindex.html", "search.html")]

# TeX that MathJax did not get: a dollar sign or a TeX command in ordinary text.
RAW_TEX = re.compile(
    r"\$|\\(?:frac|tfrac|sigma|delta|zeta|xi|beta|mathbb|mathcal|operatorname|widetilde|top|"
    r"sum|sqrt|left|right|begin|end|qquad|quad|mid|le|ge|ne|pm|to|Big|big)(?![A-Za-z])"
)
# A role or directive that MyST did not process, or a reference Sphinx could not resolve.
UNRESOLVED = re.compile(r"\?\?|\{(?:glue|numref|ref|doc|cite|prf:ref|eq)[:}]")
# Containers whose text is code or TeX on purpose.
SKIP = {"script", "style", "pre", "code", "math", "annotation"}
SKIP_CLASSES = {"math", "highlight", "cell_input", "MathJax", "MathJax_Preview", "headerlink"}
# The content column of the book theme at a 1400 px window is about 880 px wide; a table cell's
# text needs about 7.5 px per character at the theme's table font, plus padding.
CONTENT_PX, CHAR_PX, PAD_PX = 880, 7.5, 16


def _skipped(node) -> bool:
    for parent in node.parents:
        if parent.name in SKIP or SKIP_CLASSES & set(parent.get("class") or []):
            return True
    return False


def problems(html: str) -> list[str]:
    """Everything a reader should not see on a page, one line each."""
    soup = BeautifulSoup(html, "html.parser")
    main = soup.find("main") or soup.find("article") or soup
    found = []
    for text in main.find_all(string=True):
        if not isinstance(text, NavigableString) or _skipped(text):
            continue
        for pattern, what in ((RAW_TEX, "raw TeX"), (UNRESOLVED, "unresolved reference")):
            match = pattern.search(text)
            if match:
                found.append(f"{what}: {text.strip()[:100]!r}")
    for block in main.select(".stderr, .output.traceback, .output.error"):
        found.append(f"stderr or error output: {block.get_text()[:100]!r}")
    for block in main.select(".cell_output .output.stream pre, .cell_output pre"):
        lines = [l for l in block.get_text().splitlines() if l.strip()]
        aligned = [l for l in lines if len(re.findall(r"\S {2,}\S", l)) >= 2]
        if len(aligned) >= 3:
            found.append(f"print-aligned text table: {lines[0][:80]!r}")
    for table in main.find_all("table"):
        rows = [[c.get_text(" ", strip=True) for c in r.find_all(["td", "th"])]
                for r in table.find_all("tr")]  # fmt: skip
        width = {}
        for row in rows:
            for j, cell in enumerate(row):
                longest = max((len(w) for w in cell.split()), default=0)
                # a cell wraps at spaces: its width is at least its longest word, at most its text
                width[j] = max(width.get(j, 0), min(len(cell), max(longest, 24)))
        px = sum(CHAR_PX * w + PAD_PX for w in width.values())
        if px > CONTENT_PX:
            found.append(f"table about {px:.0f} px wide: {rows[0][:4] if rows else ''}")
    return found


def test_problems_are_detected():
    """Each kind of fault, planted in a small page, is reported; clean markup is not."""
    page = (
        """<main>
      <p>Step 4: - \\frac12 x_t^T</p>
      <p>costs $5</p>
      <p>see Fig. ?? and {glue:text}`missing`</p>
      <div class="cell_output"><div class="output stderr"><pre>TqdmWarning</pre></div>
        <div class="output stream"><pre>sigma   paper   ours   gap
0.030   100.0   100.0   +0.0%
0.053   100.0   100.0   +0.0%</pre></div></div>
      <table><tr>"""
        + "<td>a rather long column heading here</td>" * 8
        + """</tr></table>
      <span class="math notranslate">\\(\\frac{1}{2}\\sigma\\)</span>
      <pre>$ make book</pre>
    </main>"""
    )
    found = problems(page)
    kinds = [f.split(":")[0] for f in found]
    assert kinds.count("raw TeX") == 2, found
    assert kinds.count("unresolved reference") == 1, found
    assert any(k.startswith("stderr") for k in kinds), found
    assert any(k.startswith("print-aligned") for k in kinds), found
    assert any(k.startswith("table about") for k in kinds), found
    clean = (
        '<main><p>SNR <span class="math">\\(\\sigma\\)</span></p>'
        "<table><tr><td>1</td></tr></table></main>"
    )
    assert problems(clean) == []


def test_the_book_was_built():
    assert PAGES, f"no HTML pages in {HTML}: run `make book-html` first"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_page_reads_cleanly(page):
    found = problems(page.read_text(encoding="utf-8"))
    assert not found, "\n".join(found)
