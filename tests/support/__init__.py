"""What tests and benchmarks share: the example pages, the local services they talk to,
and the builders of subscribers, papers and editions. Benchmarks import from here; tests
never import from ``bench/``.

* :mod:`~tests.support.builders` — subscribers and papers in the database;
* :mod:`~tests.support.synthetic` — generated papers, pages, filters and topics;
* :mod:`~tests.support.smtp` — SMTP servers on loopback that record what they receive;
* :mod:`~tests.support.workers` — real Celery worker processes;
* :mod:`~tests.support.pageserver` — papers pages served from 127.0.0.1;
* :mod:`~tests.support.net` — a free loopback port.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PAGES_DIR = ROOT / "examples" / "pages"
PAGE_000 = PAGES_DIR / "000_10bdf60bb6b29d6a.txt"
PAGE_002 = PAGES_DIR / "002_13c422168dbf86c0.txt"
PAGE_004 = PAGES_DIR / "004_39ec653689168d0b.txt"
ALL_PAGES = [PAGE_000, PAGE_002, PAGE_004]
TEST_BROKER_URL = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15")

_MSO_COMMENT = re.compile(r"<!--\[if mso\]>.*?<!\[endif\]-->", re.S)
_STYLE_BLOCK = re.compile(r"<style[^>]*>(.*?)</style>", re.S)


def uninlined_css(html: str) -> list[str]:
    """The CSS left in ``<style>`` blocks of an email that should have been inlined:
    every block but the ``@media`` rules (dark mode), which cannot be inlined, and
    Outlook's block inside its ``<!--[if mso]>`` comment."""
    blocks = _STYLE_BLOCK.findall(_MSO_COMMENT.sub("", html))
    return [block for block in blocks if not block.lstrip().startswith("@media")]
