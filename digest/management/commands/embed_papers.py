"""``manage.py embed_papers``: embed every paper stored without an embedding (the
backfill after an upgrade, or after the model changed). Idempotent."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from digest.relevance.embed import BATCH_SIZE, MODEL_NAME, embed_papers, missing_embeddings


class Command(BaseCommand):
    help = "Embed the papers that have no embedding of the current model yet."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)

    def handle(self, *args: Any, **options: Any) -> None:
        todo = missing_embeddings()
        done = 0
        for start in range(0, len(todo), 1000):
            done += embed_papers(todo[start : start + 1000], options["batch_size"])
            self.stdout.write(f"embedded {done} of {len(todo)} papers with {MODEL_NAME}")
        if not todo:
            self.stdout.write(f"every paper has an embedding of {MODEL_NAME}")
