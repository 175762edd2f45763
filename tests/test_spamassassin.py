"""SpamAssassin's local rules (no network tests: ``-L``) score a real digest at most
0.5, with every header the product adds and the HTML as sent. Runs where Debian's
``spamassassin`` is installed (``make test`` installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.ingest.store import ingest_bytes

from .conftest import PAGE_000, make_subscriber
from .test_sources import FIXTURES

pytestmark = pytest.mark.skipif(
    shutil.which("spamassassin") is None, reason="Debian's spamassassin is not installed"
)


def score(message: bytes, tmp_path: Path) -> tuple[float, str]:
    """SpamAssassin's score of ``message`` and the rules that fired, local tests only,
    with no user configuration or Bayes database of this machine's."""
    home = tmp_path / "sa"
    home.mkdir(exist_ok=True)
    result = subprocess.run(
        ["spamassassin", "-L", "-t", "-x"],
        input=message,
        capture_output=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        check=False,
    )
    out = result.stdout.decode("utf-8", "replace")
    status = re.search(
        r"^X-Spam-Status: \w+, score=(-?[\d.]+).*?tests=(.*?)(?:autolearn|version)",
        out,
        re.M | re.S,
    )
    assert status is not None, result.stderr.decode()[-2000:]
    return float(status.group(1)), " ".join(status.group(2).split())


@pytest.mark.django_db
def test_a_digest_scores_at_most_half_a_point(settings, outbox: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.DEFAULT_FROM_EMAIL = "Trending papers <digest@papers.example.org>"
    start = timezone.now() - timedelta(hours=20)
    ingest_bytes(PAGE_000.read_bytes(), source=str(PAGE_000), now=start)
    items = json.loads((FIXTURES / "json" / "daily_papers_2025-03-11.json").read_text())
    ingest_bytes(json.dumps(items), source="daily.json", now=start)
    ada = make_subscriber(
        "ada@example.org", ["mixture-of-experts", "long-context", "dino", "transformer"]
    )
    [result] = deliver([ada.pk])
    assert result.status == "sent" and result.papers == settings.DIGEST_MAX_PAPERS
    points, rules = score((outbox / f"digest-{result.digest_id}.eml").read_bytes(), tmp_path)
    print(f"spamassassin score={points} tests={rules}")
    assert points <= 0.5, rules
