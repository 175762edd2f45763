"""``manage.py add_source NAME [URL] [--format FORMAT] [--every MINUTES] [--disabled]
[--categories "cs.CL cs.LG"] [--announce-types "new cross"]``"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from digest.formats import FORMATS
from digest.ingest.sources import add_source


class Command(BaseCommand):
    help = (
        "Add a papers page or API URL for the beat to fetch on a schedule, or update the "
        "source of that name. It is fetched at the next beat tick."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "url",
            nargs="?",
            default="",
            help="an http(s) URL; for an arXiv format, leave it out to use arXiv's own",
        )
        parser.add_argument(
            "--format", choices=list(FORMATS), default="", help="skip auto-detection"
        )
        parser.add_argument("--every", type=int, default=60, metavar="MINUTES", help="default: 60")
        parser.add_argument("--disabled", action="store_true", help="add it switched off")
        parser.add_argument(
            "--categories",
            default="",
            help='arXiv formats: the categories to keep, e.g. "cs.CL cs.LG" (default: all)',
        )
        parser.add_argument(
            "--announce-types",
            default="new cross",
            help='arXiv announcements to take (default: "new cross"; also replace, replace-cross)',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source, created = add_source(
                options["name"],
                options["url"],
                format=options["format"],
                interval=timedelta(minutes=options["every"]),
                enabled=not options["disabled"],
                categories=options["categories"],
                announce_types=options["announce_types"],
            )
        except ValidationError as exc:
            messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(messages) from None
        self.stdout.write(
            f"{'added' if created else 'updated'} source {source.name!r}: {source.url}, "
            f"every {options['every']} minutes{'' if source.enabled else ' (disabled)'}"
        )
