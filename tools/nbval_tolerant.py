"""pytest plugin of ``make nbval``: nbval compares each chapter's results cell with its
reference exactly when the reference recorded this machine's platform, and within the tolerances
measured over seeds otherwise (``tools/regression.py``); every other cell as nbval does.

Loaded with ``-p tools.nbval_tolerant``, it replaces nbval's ``IPyNbCell.compare_outputs`` for
the cells tagged ``results`` and leaves nbval's execution, sanitizers and reports as they are.
The tolerances are read from ``$NBVAL_TOLERANCES`` (the quick profile's file by default; an
empty value for a profile whose seeds were never measured, which then compares every value to
its last printed digit).
"""

from __future__ import annotations

import os
from pathlib import Path

from nbval.plugin import IPyNbCell

from lowrank.provenance import platform_record
from tools import book, regression

_nbval_compare = IPyNbCell.compare_outputs


def _stream_text(outputs) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


def _tolerances() -> dict:
    path = os.environ.get("NBVAL_TOLERANCES", str(regression.TOLERANCES))
    return regression.load_tolerances(Path(path)) if path else {}


def compare_outputs(self, test, ref, skip_compare=None):
    if book.RESULTS not in self.cell.metadata.get("tags", []):
        return _nbval_compare(self, test, ref, skip_compare)
    reference_platform = regression.platform_of(self.parent.nb)
    ours = platform_record()
    if regression.same_platform(reference_platform, ours):
        return _nbval_compare(self, test, ref, skip_compare)
    chapter = Path(str(self.parent.fspath)).stem
    mismatches = regression.compare_tolerant(
        regression.parse_results(regression.sanitized(_stream_text(ref))),
        regression.parse_results(regression.sanitized(_stream_text(test))),
        _tolerances().get(chapter, {}),
    )
    if not mismatches:
        return True
    why = regression.platform_difference(reference_platform, ours)
    self.comparison_traceback = [
        f"{chapter}: results beyond their tolerances (tolerant comparison: {why})",
        *(m.line() for m in mismatches),
    ]
    return False


IPyNbCell.compare_outputs = compare_outputs
