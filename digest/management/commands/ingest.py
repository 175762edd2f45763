"""``manage.py ingest [--json] [--format text|html|json] PATH_OR_URL...``"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from digest.ingest import PageResult, ingest_source
from digest.models import Paper
from digest.parsers import FORMATS


def ingest_all(sources: list[str], format: str | None = None) -> tuple[list[PageResult], int]:
    """Ingest every source, each on its own; returns the page results and the number of
    papers stored afterwards."""
    results = [ingest_source(source, format=format) for source in sources]
    return results, Paper.objects.count()


class Command(BaseCommand):
    help = "Ingest Hugging Face papers pages from files or URLs. Exits 1 if any page failed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("sources", nargs="+", metavar="PATH_OR_URL")
        parser.add_argument("--json", action="store_true", help="print one JSON summary")
        parser.add_argument("--format", choices=FORMATS, help="skip auto-detection")

    def handle(self, *args: Any, **options: Any) -> None:
        results, total = ingest_all(options["sources"], options["format"])
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
        failed = sum(1 for r in results if r.error)
        if failed:
            raise CommandError(f"{failed} of {len(results)} pages failed", returncode=1)
