"""``manage.py ingest [--json] [--format text|html|json] [--progress] PATH_OR_URL...``"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from digest.formats import FORMATS
from digest.ingest.store import PageResult, ingest_source
from digest.models import Paper


def expand(sources: Iterable[str]) -> list[str]:
    """``sources`` with each directory replaced by the files in it (sorted by name, hidden
    files left out); URLs and other paths are kept as given."""
    expanded = []
    for source in sources:
        path = Path(source)
        if not source.startswith(("http://", "https://")) and path.is_dir():
            expanded.extend(
                str(p) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")
            )
        else:
            expanded.append(source)
    return expanded


def ingest_all(
    sources: list[str], format: str | None = None, *, progress: TextIO | None = None
) -> tuple[list[PageResult], int]:
    """Ingest every source (a directory stands for its files), each on its own; returns
    the page results and the number of papers stored afterwards. With ``progress``, a
    tqdm bar counting pages and papers is drawn on that stream."""
    pages = expand(sources)
    results = []
    with tqdm(
        total=len(pages), unit="page", file=progress, disable=progress is None, leave=False
    ) as bar:
        for source in pages:
            result = ingest_source(source, format=format)
            results.append(result)
            bar.update()
            bar.set_postfix(papers=sum(r.papers for r in results), failed=_failed(results))
    return results, Paper.objects.count()


def _failed(results: list[PageResult]) -> int:
    return sum(1 for r in results if r.error)


class Command(BaseCommand):
    help = (
        "Ingest Hugging Face papers pages (text, HTML or JSON) from files, folders or "
        "URLs. Exits 1 if any page failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("sources", nargs="+", metavar="PATH_OR_URL")
        parser.add_argument("--json", action="store_true", help="print one JSON summary")
        parser.add_argument("--format", choices=list(FORMATS), help="skip auto-detection")
        parser.add_argument(
            "--progress",
            action="store_true",
            help="show a progress bar on stderr (default: only when stderr is a terminal)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The raw stream: the command's stderr wrapper adds a newline to every write,
        # which would break the bar's redraws.
        stream = options.get("stderr") or sys.stderr
        show = options["progress"] or stream.isatty()
        results, total = ingest_all(
            options["sources"], options["format"], progress=stream if show else None
        )
        if options["json"]:
            summary = {"pages": [r.as_dict() for r in results], "papers_total": total}
            self.stdout.write(json.dumps(summary))
        else:
            for r in results:
                if r.error:
                    self.stderr.write(f"FAILED {r.error}")
                else:
                    self.stdout.write(
                        f"{r.source}: {r.papers} papers ({r.format}), "
                        f"{r.new} new, {r.updated} updated"
                    )
            self.stdout.write(f"{total} papers stored")
        failed = _failed(results)
        if failed:
            raise CommandError(f"{failed} of {len(results)} pages failed", returncode=1)
