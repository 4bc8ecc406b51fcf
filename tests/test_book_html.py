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

import matplotlib
import nbformat
import pytest
from bs4 import BeautifulSoup, NavigableString
from markdown_it import MarkdownIt
from PIL import ImageFont

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
# The content column at the 1280 px window the book is read at (issue 24): the book theme gives
# the primary sidebar 20% and, from 1200 px, keeps 17rem for the page's contents, less 4rem of
# padding: 0.8 * (1280 - 6) - 272 - 64 = 683 px. A browser narrows a table's columns down to their
# longest word (cells wrap at spaces, not inside `2.13.0+cpu`, a chapter's file name or inline
# math) and cuts the table off beyond that.
CONTENT_PX = 683
# The theme's tables (class "table") pad a cell 0.5rem each side; pandas' tables get the browser's
# 1 px.
THEME_PAD_PX, PLAIN_PAD_PX = 16, 2
# Headless Chromium on Linux, as the reader used, sets the theme's system-ui text in DejaVu Sans
# (16 px, headers bold) and code in DejaVu Sans Mono at 0.875em; matplotlib ships both. Measured
# so, the status page's old seven-column table ends past 683 px just after "2.13.0+", where the
# reader saw it cut off. (Counting characters, 24 at most per cell, against an 880 px column let
# it through.)
_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
SANS, BOLD, MONO = (
    ImageFont.truetype(str(_FONTS / name), size)
    for name, size in (
        ("DejaVuSans.ttf", 16),
        ("DejaVuSans-Bold.ttf", 16),
        ("DejaVuSansMono.ttf", 14),
    )
)
# A browser breaks a line at spaces, never at a non-breaking one (which \s would match).
BREAKABLE = re.compile(r"([ \t\n\r\f\v]+)")
# What inline math renders as one glyph each: a TeX command, a character; the delimiters, braces
# and sub- or superscript marks take no room.
MATH_DELIMITER = re.compile(r"\\[()\[\]]")
TEX_GLYPH = re.compile(r"\\[A-Za-z]+|[^\s{}^_\\]")
# What an output must not show: the machine's paths, the model cache's folder names (kind, data
# set, size, then 12 hex digits of the configuration's hash, as lowrank.models names them), raw
# dicts.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:work|home|tmp|root|usr|opt|mnt|Users|var)/\S+")
CACHE_KEY = re.compile(r"\b[a-z]+-[\w-]+-[0-9a-f]{12}\b")
DICT_REPR = re.compile(r"""\{\s*(?:'[^']*'|"[^"]*"|-?\d+(?:\.\d+)?)\s*:\s*\S""")
STAGED = ROOT / "_build" / "src" / "notebooks"  # what make book-html built the pages from


def _skipped(node) -> bool:
    for parent in node.parents:
        if parent.name in SKIP or SKIP_CLASSES & set(parent.get("class") or []):
            return True
    return False


def problems(html: str, parameters: dict[str, str | None] | None = None) -> list[str]:
    """Everything a reader should not see on a page, one line each.

    Arguments:
        parameters: every name of the ``parameters`` cell of the page's notebook -> the value its
            run was given (as papermill injected it; ``None`` for a name not injected, or a
            notebook run by hand); ``None`` for a page that is not a chapter.
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
    # without book/_static/wrap.css a code block scrolls, and a line past the column is cut off
    # Sphinx links it as ``../_static/wrap.css?v=<checksum>``: compare the path without the query
    if not any(link["href"].split("?")[0].endswith("/wrap.css")
               for link in soup.select("link[href]")):  # fmt: skip
        for block in main.select("div.highlight pre"):
            long = [l for l in block.get_text().splitlines()
                    if MONO.getlength(l) > CONTENT_PX - 2 * THEME_PAD_PX]  # fmt: skip
            if long:
                found.append(f"code line cut off (wrap.css not linked): {long[0][:60]!r}")
    for table in main.find_all("table"):
        px = _narrowest_px(table)
        if px > CONTENT_PX:
            head = [c.get_text(" ", strip=True) for c in table.find("tr").find_all(["td", "th"])]
            found.append(f"table at least {px} px wide: {head[:4]}")
    return found


def _narrowest_px(table) -> int:
    """The narrowest a browser can lay ``table`` out: every column as wide as its longest word."""
    pad = THEME_PAD_PX if "table" in (table.get("class") or []) else PLAIN_PAD_PX
    width = {}
    for row in table.find_all("tr"):
        for j, cell in enumerate(row.find_all(["td", "th"])):
            width[j] = max(width.get(j, 0), *_word_px(cell))
    return round(sum(w + pad for w in width.values()))


def _word_px(cell) -> list[float]:
    """The widths of a table cell's unbreakable runs, inline math as its rendered glyphs."""
    words, run = [], 0.0
    for piece in cell.find_all(string=True):
        if piece.find_parent(class_="math") is not None:
            run += SANS.getlength("x") * len(TEX_GLYPH.findall(MATH_DELIMITER.sub("", piece)))
            continue
        font = MONO if piece.find_parent("code") else BOLD if piece.find_parent("th") else SANS
        for part in BREAKABLE.split(piece):
            if BREAKABLE.fullmatch(part):
                words.append(run)
                run = 0.0
            else:
                run += font.getlength(part)
    return [*words, run]


def _output_problems(main) -> list[str]:
    found = []
    # a cell's outputs, and those glue pasted into the prose (an output without a cell around it)
    outputs = main.select(".cell_output, .output, .pasted-text")
    for block in outputs:
        if block.find_parent(class_=["cell_output", "output", "pasted-text"]) is not None:
            continue  # inside one already read
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


def _parameter_problems(main, parameters: dict[str, str | None]) -> list[str]:
    found = []
    for code in main.find_all("code"):
        name = code.get_text()
        if name not in parameters or code.find_parent(class_=re.compile("cell_input|highlight")):
            continue
        cell = code.find_parent(["td", "th"])
        if cell is not None and cell.get_text(strip=True) == name:
            continue  # a table's name column, such as the values a page ran with
        found.append(f"parameter name where a value belongs: {name!r}")
    block = main.select_one(".tag_parameters .cell_input")
    shown = {}
    for line in block.get_text().splitlines() if block is not None else []:
        match = book.PARAMETER_LINE.match(line)
        if match:
            shown[match["name"]] = match["value"].strip()
    for name, ran in parameters.items():
        if ran is None:
            continue
        if name not in shown:
            found.append(f"parameters cell does not show {name}, the run had {ran}")
        elif shown[name] != ran.strip():
            found.append(f"parameters cell shows {name} = {shown[name]}, the run had {ran}")
    return found


# The status page's table when it had seven columns, which the browser cut off, as the theme
# renders its Markdown (its header and its widest row).
SEVEN_COLUMNS = (
    '<table class="table"><tr><th>notebook</th><th>profile</th><th>status</th>'
    "<th>wall time (s)</th><th>device</th><th>torch</th><th>git</th></tr>"
    "<tr><td>07_memorization_vs_generalization</td><td>standard</td><td>ok</td><td>922.4</td>"
    "<td>cpu: x86_64, 2 threads</td><td>2.13.0+cpu</td><td><code>62277cb</code></td></tr>"
    "</table>"
)


# a parameters-cell line whose comment runs past the column (83 characters: 699 px of DejaVu
# Sans Mono)
LONG_CODE = "probe_seeds: int = 2  # subsets (seeds) of each few-label probe, and a long comment"


def test_problems_are_detected():
    """Each kind of fault, planted in a small page, is reported; clean markup is not."""
    page = f"""<main>
      <p>Step 4: - \\frac12 x_t^T</p>
      <p>costs $5</p>
      <p>see Fig. ?? and {{glue:text}}`missing`</p>
      <div class="cell_output"><div class="output stderr"><pre>TqdmWarning</pre></div>
        <div class="output stream"><pre>sigma   paper   ours   gap
0.030   100.0   100.0   +0.0%
0.053   100.0   100.0   +0.0%</pre></div></div>
      {SEVEN_COLUMNS}
      <span class="math notranslate">\\(\\frac{{1}}{{2}}\\sigma\\)</span>
      <pre>$ make book</pre>
      <div class="highlight"><pre>{LONG_CODE}</pre></div>
    </main>"""
    found = problems(page)
    kinds = [f.split(":")[0] for f in found]
    assert not any("twice" in k or "in an output" in k or "parameter" in k for k in kinds), found
    assert kinds.count("raw TeX") == 2, found
    assert kinds.count("unresolved reference") == 1, found
    assert any(k.startswith("stderr") for k in kinds), found
    assert any(k.startswith("print-aligned") for k in kinds), found
    assert kinds.count("table at least 788 px wide") == 1, found
    assert kinds.count("code line cut off (wrap.css not linked)") == 1, found
    # with the stylesheet that wraps code, the same line is read whole
    wrapped = f"""<html><head><link rel="stylesheet" href="../_static/wrap.css?v=e4da9ac1">
      </head><main>
      <div class="highlight"><pre>{LONG_CODE}</pre></div></main></html>"""
    assert problems(wrapped) == []
    # long headings wrap at their spaces and math takes the room of its glyphs: both fit
    wide = "<td>a rather long column heading here</td>" * 8
    math = '<td><span class="math">\\(\\delta^2/(\\delta^2+\\sigma^2)\\)</span></td>' * 4
    clean = f"""<main><p>SNR <span class="math">\\(\\sigma\\)</span></p>
      <table><tr><td>1</td></tr></table><table><tr>{wide}</tr><tr>{math}</tr></table></main>"""
    assert problems(clean) == []


def test_the_status_table_fits_the_column():
    """The status page's table as tools/book.py writes it, with the longest chapter name, a failed
    run and a dirty checkout, fits the content column."""
    longest = max((p.stem for p in (ROOT / "notebooks").glob("*.ipynb")), key=len)
    record = {"notebook": longest, "profile": "standard", "status": "ok", "seconds": 1632.8,
              "device": "cpu: x86_64, 2 threads", "torch": "2.13.0+cpu",
              "git": "62277cb-dirty"}  # fmt: skip
    failed = {**record, "status": "failed"}
    markdown = book.status_table([record, failed])
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    themed = html.replace("<table>", '<table class="table">')  # the theme's class, and padding
    assert themed.count('class="table"') == 1 and problems(themed) == []


def test_chapter_defects_are_detected():
    """The defects of issue 24, planted one each: a table rendered twice, parameter names in
    prose, a path, a cache key and a dict in outputs (a cell's, and glued ones), a parameters cell
    showing a default and one leaving a value out."""
    table = "<table><tr><td>σ</td><td>0.002</td></tr></table>"
    page = f"""<main>
      <p>EMA after <code>early_epoch</code> epochs; see <code>probe_network</code></p>
      <p>Intervals over <code>probe_seeds</code> seeds.</p>
      <table><tr><td><code>unet_epochs</code></td><td>6</td></tr></table>
      <div class="cell tag_parameters"><div class="cell_input"><pre>unet_epochs: int = 2  # UNet
early_epoch: int = 1
seed: int = 0</pre></div></div>
      <div class="cell_output"><pre>/work/main/_build/models/x 60000 training images</pre></div>
      <p>The classifier <span class="pasted-text">classifier-fashion-mnist-16px-5fb2198679d3</span>
      took <span class="output text_plain">{{16: '18.1 min', 64: '9.6 min'}}</span>.</p>
      <div class="cell_output">{table}</div>{table}
    </main>"""
    parameters = {"early_epoch": "1", "unet_epochs": "6", "seed": "0", "profile": '"standard"',
                  "probe_seeds": None}  # fmt: skip
    found = problems(page, parameters)
    kinds = sorted(f.split(":")[0] for f in found)
    expected = [
        "absolute path in an output",
        "cache key in an output",
        "raw dict in an output",
        "parameter name where a value belongs",
        "parameter name where a value belongs",
        "parameters cell shows unet_epochs = 2, the run had 6",
        'parameters cell does not show profile, the run had "standard"',
        "table shown twice",
    ]
    assert kinds == sorted(expected), found
    # the same page with values, clean outputs, one table: nothing to report
    clean = """<main><p>EMA after 1 epoch; see <code>probe_network</code></p>
      <p>Intervals over 3 seeds.</p>
      <table><tr><td><code>unet_epochs</code></td><td>6</td></tr></table>
      <div class="cell tag_parameters"><div class="cell_input"><pre>unet_epochs: int = 6
early_epoch: int = 1
seed: int = 0  # seeds everything
profile: str = "standard"</pre></div></div>
      <div class="cell_output"><pre>60000 training images in {x}, classes {0, 1}</pre></div>
      <p>It took <span class="pasted-text">18.1 min</span>.</p>
      <table><tr><td>σ</td><td>0.002</td></tr></table></main>"""
    assert problems(clean, parameters) == []


def _parameters(page: Path) -> dict[str, str | None] | None:
    """The names of the parameters cell of the staged notebook a chapter page was built from,
    each with the value papermill injected for its run (``None`` where it injected none)."""
    source = STAGED / f"{page.stem}.ipynb"
    if page.parent.name != "notebooks" or not source.exists():
        return None
    nb = nbformat.read(source, as_version=4)
    injected, names = {}, []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if book.INJECTED in tags:
            injected = book.injected_values(cell.source)
        elif "parameters" in tags:
            matches = map(book.PARAMETER_LINE.match, cell.source.splitlines())
            names = [m["name"] for m in matches if m]
    return {name: injected.get(name) for name in names}


def test_the_book_was_built():
    assert PAGES, f"no HTML pages in {HTML}: run `make book-html` first"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_page_reads_cleanly(page):
    found = problems(page.read_text(encoding="utf-8"), _parameters(page))
    assert not found, "\n".join(found)
