"""The built HTML book as a reader sees it: no raw TeX, no unresolved reference, no stderr block,
no print-aligned text table, no table wider than the content column, no table shown twice, no
parameter name in prose where a value belongs, no absolute path, cache key or raw dict in an
output, and a parameters cell that shows the values the page ran with.

Run by ``make book-check`` after ``make book-html`` (part of ``make test``); it reads
``_build/book/_build/html`` or the folder in ``LOWRANK_BOOK_HTML``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup, NavigableString

from tools import book

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
# text needs about 8 px per character at the theme's table font, plus padding (7.5 px let the
# status page's seven-column table through, which the browser cut off).
CONTENT_PX, CHAR_PX, PAD_PX = 880, 8, 16
# What an output must not show: the machine's paths, the model cache's folder names, raw dicts.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:work|home|tmp|root|usr|opt|mnt|Users|var)/\S+")
CACHE_KEY = re.compile(r"\b(?:unet|dae)-[\w-]+-[0-9a-f]{12}\b")
DICT_REPR = re.compile(r"""\{\s*(?:'[^']*'|"[^"]*"|-?\d+(?:\.\d+)?)\s*:\s*\S""")
STAGED = ROOT / "_build" / "src" / "notebooks"  # what make book-html built the pages from


def _skipped(node) -> bool:
    for parent in node.parents:
        if parent.name in SKIP or SKIP_CLASSES & set(parent.get("class") or []):
            return True
    return False


def problems(html: str, parameters: dict[str, str] | None = None) -> list[str]:
    """Everything a reader should not see on a page, one line each.

    Arguments:
        parameters: the page's notebook's parameters (name -> the value the run was given, as
            papermill injected it); ``None`` for a page that is not a chapter.
    """
    soup = BeautifulSoup(html, "html.parser")
    main = soup.find("main") or soup.find("article") or soup
    found = _output_problems(main) + _duplicate_tables(main)
    if parameters:
        found += _parameter_problems(main, parameters)
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


def _output_problems(main) -> list[str]:
    found = []
    for block in main.select(".cell_output"):
        text = block.get_text(" ")
        for pattern, what in ((ABSOLUTE_PATH, "absolute path"), (CACHE_KEY, "cache key"),
                              (DICT_REPR, "raw dict")):  # fmt: skip
            match = pattern.search(text)
            if match:
                found.append(f"{what} in an output: {match.group(0)[:80]!r}")
    return found


def _duplicate_tables(main) -> list[str]:
    # a glued table displayed by its cell and again where the prose places it
    found, seen = [], set()
    for table in main.find_all("table"):
        cells = tuple(c.get_text(" ", strip=True) for c in table.find_all(["td", "th"]))
        if len(cells) > 1 and cells in seen:
            found.append(f"table shown twice: {cells[:4]}")
        seen.add(cells)
    return found


def _parameter_problems(main, parameters: dict[str, str]) -> list[str]:
    found = []
    for code in main.find_all("code"):
        if code.find_parent(class_=re.compile("cell_input|highlight")):
            continue
        if code.get_text() in parameters:
            found.append(f"parameter name where a value belongs: {code.get_text()!r}")
    cell = main.select_one(".tag_parameters .cell_input")
    for line in cell.get_text().splitlines() if cell is not None else []:
        match = book.PARAMETER_LINE.match(line)
        if match and match["name"] in parameters:
            shown, ran = match["value"].strip(), parameters[match["name"]].strip()
            if shown != ran:
                found.append(f"parameters cell shows {match['name']} = {shown}, the run had {ran}")
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
    assert not any("twice" in k or "in an output" in k or "parameter" in k for k in kinds), found
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


def test_chapter_defects_are_detected():
    """The defects of issue 24, planted one each: a table rendered twice, a parameter name in
    prose, a path, a cache key and a dict in outputs, a parameters cell showing a default."""
    table = "<table><tr><td>σ</td><td>0.002</td></tr></table>"
    page = f"""<main>
      <p>EMA after <code>early_epoch</code> epochs; see <code>probe_network</code></p>
      <div class="cell tag_parameters"><div class="cell_input"><pre>unet_epochs: int = 2  # UNet
seed: int = 0</pre></div></div>
      <div class="cell_output"><pre>/work/main/_build/models/x 60000 training images</pre></div>
      <div class="cell_output"><pre>DAE: dae-fashion-mnist-16px-5fb2198679d3, loss 1.0</pre></div>
      <div class="cell_output"><pre>{{16: '18.1 min', 64: '9.6 min'}}</pre></div>
      <div class="cell_output">{table}</div>{table}
    </main>"""
    found = problems(page, {"early_epoch": "1", "unet_epochs": "6", "seed": "0"})
    kinds = sorted(f.split(":")[0] for f in found)
    expected = [
        "absolute path in an output",
        "cache key in an output",
        "raw dict in an output",
        "parameter name where a value belongs",
        "parameters cell shows unet_epochs = 2, the run had 6",
        "table shown twice",
    ]
    assert kinds == sorted(expected), found  # fmt: skip
    # the same page with values, clean outputs, one table: nothing to report
    clean = """<main><p>EMA after 1 epoch; see <code>probe_network</code></p>
      <div class="cell tag_parameters"><div class="cell_input"><pre>unet_epochs: int = 6
</pre></div></div><div class="cell_output"><pre>60000 training images in {x}</pre></div>
      <table><tr><td>σ</td><td>0.002</td></tr></table></main>"""
    assert problems(clean, {"early_epoch": "1", "unet_epochs": "6"}) == []


def _parameters(page: Path) -> dict[str, str] | None:
    """The injected parameters of the staged notebook a chapter page was built from."""
    source = STAGED / f"{page.stem}.ipynb"
    if page.parent.name != "notebooks" or not source.exists():
        return None
    nb = nbformat.read(source, as_version=4)
    injected = [c for c in nb.cells if book.INJECTED in c.metadata.get("tags", [])]
    return book.injected_values(injected[0].source) if injected else None


def test_the_book_was_built():
    assert PAGES, f"no HTML pages in {HTML}: run `make book-html` first"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_page_reads_cleanly(page):
    found = problems(page.read_text(encoding="utf-8"), _parameters(page))
    assert not found, "\n".join(found)
