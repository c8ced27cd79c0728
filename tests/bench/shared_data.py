"""The labelled pairs some benchmarks replay: ``../shared/data`` beside the project (see its
README for sources and licenses). The project does not ship them, so a benchmark that needs
them calls ``require`` first: without the file it prints one line saying why and exits 0."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
FOW_PAIRS = SHARED_DATA / "fow_cache" / "pairs.tsv"
STS_PAIRS = SHARED_DATA / "sts2016_qq" / "pairs.tsv"
PAWS_PAIRS = SHARED_DATA / "paws_wiki" / "pairs.tsv"


def require(path: Path) -> Path:
    """``path`` when it is a file; else print ``skipped: ...`` and exit with status 0."""
    if not path.is_file():
        shown = os.path.relpath(path, ROOT)
        print(f"skipped: {shown} not found (labelled pairs are not shipped with the project)")
        raise SystemExit(0)
    return path
