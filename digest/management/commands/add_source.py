"""``manage.py add_source NAME URL [--format text|html|json] [--every MINUTES] [--disabled]``"""

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
        parser.add_argument("url", help="an http(s) URL")
        parser.add_argument(
            "--format", choices=list(FORMATS), default="", help="skip auto-detection"
        )
        parser.add_argument("--every", type=int, default=60, metavar="MINUTES", help="default: 60")
        parser.add_argument("--disabled", action="store_true", help="add it switched off")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source, created = add_source(
                options["name"],
                options["url"],
                format=options["format"],
                interval=timedelta(minutes=options["every"]),
                enabled=not options["disabled"],
            )
        except ValidationError as exc:
            messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(messages) from None
        self.stdout.write(
            f"{'added' if created else 'updated'} source {source.name!r}: {source.url}, "
            f"every {options['every']} minutes{'' if source.enabled else ' (disabled)'}"
        )
