"""Digest rendering speed: pieces inlined once per batch vs premailer once per email.

Renders 10,000 personalised digests of 10 papers each (subject, text and HTML), each
subscriber with their own address, unsubscribe link, papers, reasons and signed "more /
less like this" links drawn from an edition of 200 papers, in one process (so the rate
is per core); ``rate_without_vote_links`` renders the same batch without the vote links
(what signing two links per paper costs). The baseline,
premailer run on every email (``digest.delivery.render.render_digest``), is measured in the same
run on a sample of 200 emails and scaled; the sample rendered by the batch renderer must
equal it (``agrees``, else the bench exits 1). ``BENCH_SCALE`` multiplies both counts
(at least 100 and 10). Prints one JSON line; the goal is ≥ 2,000 emails/s per core.

Run: ``.venv/bin/python -m bench.render`` (no database needed).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")

import django  # noqa: E402

django.setup()

from digest.delivery.render import Renderer, render_digest  # noqa: E402
from tests.support.synthetic import EDITION_PAPERS, PAPERS_PER_EMAIL, edition, recipients  # noqa: E402

SCALE = float(os.environ.get("BENCH_SCALE") or 1)
EMAILS, BASELINE_SAMPLE = max(100, int(10_000 * SCALE)), max(10, int(200 * SCALE))


def render_all(render, batch: list[dict], keep: list | None = None, votes: bool = True) -> int:  # type: ignore[no-untyped-def]
    size = 0
    for r in batch:
        subject, text, html = render(
            r["papers"],
            r["reasons"],
            recipient=r["recipient"],
            frequency=r["frequency"],
            edition=r["edition"],
            feedback=r["feedback"] if votes else None,
        )
        size += len(subject) + len(text) + len(html)
        if keep is not None:
            keep.append((subject, text, html))
    return size


def main() -> None:
    rng = random.Random(20260308)
    papers = edition(rng)
    batch = recipients(rng, papers, EMAILS)
    render_all(render_digest, batch[:1])  # warm caches

    expected: list[tuple[str, str, str]] = []
    started = time.perf_counter()
    render_all(render_digest, batch[:BASELINE_SAMPLE], expected)
    baseline_seconds = time.perf_counter() - started
    baseline_rate = BASELINE_SAMPLE / baseline_seconds

    started = time.perf_counter()
    size = render_all(Renderer().digest, batch)
    seconds = time.perf_counter() - started
    rate = EMAILS / seconds
    # The same batch without the signed vote links: what signing them costs.
    started = time.perf_counter()
    render_all(Renderer().digest, batch, votes=False)
    rate_without_votes = EMAILS / (time.perf_counter() - started)
    # The batch renderer must produce exactly what premailer per email does.
    got: list[tuple[str, str, str]] = []
    render_all(Renderer().digest, batch[:BASELINE_SAMPLE], got)
    agrees = got == expected
    print(
        json.dumps(
            {
                "name": "render",
                "seconds": round(seconds, 3),
                "rate": round(rate, 1),
                "unit": "emails/s per core",
                "ratio": round(rate / baseline_rate, 1),
                "baseline": "premailer per email (digest.delivery.render.render_digest)",
                "baseline_rate": round(baseline_rate, 1),
                "baseline_sample": BASELINE_SAMPLE,
                "baseline_seconds_scaled": round(baseline_seconds * EMAILS / BASELINE_SAMPLE, 1),
                "emails": EMAILS,
                "papers_per_email": PAPERS_PER_EMAIL,
                "edition_papers": EDITION_PAPERS,
                "mean_email_kb": round(size / EMAILS / 1024, 1),
                "rate_without_vote_links": round(rate_without_votes, 1),
                "agrees": agrees,
                "bench_scale": SCALE,
                "goal": 2000,
                "goal_met": rate >= 2000,
            }
        )
    )
    if not agrees:
        sys.exit(1)


if __name__ == "__main__":
    main()
