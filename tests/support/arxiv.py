"""arXiv answers built to order: the API's Atom feed and the announcement RSS, shaped as
arXiv writes them (see the fixtures in ``tests/fixtures/arxiv/`` and the parsers'
docstrings), for paging tests and the ingest benchmark."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

ARXIV_CATEGORIES = [
    "cs.CL", "cs.LG", "cs.CV", "cs.AI", "cs.RO", "cs.IR", "cs.NE", "cs.SD", "stat.ML",
    "math.OC", "eess.AS", "eess.IV", "q-bio.NC", "physics.comp-ph", "cond-mat.dis-nn",
]  # fmt: skip


@dataclass
class ArxivEntry:
    """One paper as arXiv announces it."""

    arxiv_id: str
    version: int
    title: str
    abstract: str
    authors: list[str]
    categories: list[str]
    announce_type: str = "new"
    comment: str = ""
    doi: str = ""
    journal_ref: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def make_entries(count: int, *, seed: int = 19, first: int = 1) -> list[ArxivEntry]:
    """``count`` entries of a realistic announcement day: ids ``2503.0NNNN`` from
    ``first``, titles of 6-16 words and abstracts of 120-220 drawn from the example
    pages' words (:func:`~tests.support.synthetic.vocabulary`, so common words stay
    common), 1-30 authors (one title in twenty with LaTeX and an ``&``), 1-4 categories,
    85% new, 15% cross-lists."""
    from tests.support.synthetic import vocabulary

    title_words, abstract_words = vocabulary()
    rng = random.Random(seed)
    entries = []
    for n in range(first, first + count):
        title = " ".join(rng.choices(title_words, k=rng.randint(6, 16)))
        if n % 20 == 0:
            title = f"$\\mathcal{{O}}(n \\log n)$ {title} & <Beyond>"
        entries.append(
            ArxivEntry(
                arxiv_id=f"2503.{n:05d}",
                version=rng.choice([1, 1, 1, 2]),
                title=title,
                abstract=" ".join(rng.choices(abstract_words, k=rng.randint(120, 220))),
                authors=[f"Author {n}-{k} Name" for k in range(rng.randint(1, 30))],
                categories=rng.sample(ARXIV_CATEGORIES, rng.randint(1, 4)),
                announce_type="cross" if rng.random() < 0.15 else "new",
                comment=f"{rng.randint(4, 40)} pages" if rng.random() < 0.6 else "",
                doi=f"10.1234/x.{n}" if rng.random() < 0.1 else "",
            )
        )
    return entries


def atom_feed(entries: list[ArxivEntry], *, start: int = 0, total: int | None = None) -> bytes:
    """An arXiv API answer (``/api/query``) holding ``entries`` as the page at ``start``
    of ``total`` results."""
    total = len(entries) if total is None else total
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom">\n'
        '  <title type="html">ArXiv Query: search_query=cat:cs.CL</title>\n'
        "  <id>http://arxiv.org/api/generated</id>\n"
        "  <updated>2025-03-11T00:00:00-04:00</updated>\n"
        f"  <opensearch:totalResults>{total}</opensearch:totalResults>\n"
        f"  <opensearch:startIndex>{start}</opensearch:startIndex>\n"
        f"  <opensearch:itemsPerPage>{len(entries)}</opensearch:itemsPerPage>\n"
    ]
    for e in entries:
        versioned = f"{e.arxiv_id}v{e.version}"
        parts.append(
            "  <entry>\n"
            f"    <id>http://arxiv.org/abs/{versioned}</id>\n"
            "    <updated>2025-03-10T17:00:00Z</updated>\n"
            "    <published>2025-03-10T12:00:00Z</published>\n"
            f"    <title>{escape(e.title)}</title>\n"
            f"    <summary>  {escape(e.abstract)}\n</summary>\n"
            + "".join(f"    <author><name>{escape(a)}</name></author>\n" for a in e.authors)
            + (f"    <arxiv:comment>{escape(e.comment)}</arxiv:comment>\n" if e.comment else "")
            + (f"    <arxiv:doi>{escape(e.doi)}</arxiv:doi>\n" if e.doi else "")
            + f'    <link href="http://arxiv.org/abs/{versioned}" rel="alternate" type="text/html"/>\n'
            f'    <link title="pdf" href="http://arxiv.org/pdf/{versioned}" rel="related" '
            'type="application/pdf"/>\n'
            f'    <arxiv:primary_category term="{e.categories[0]}" '
            'scheme="http://arxiv.org/schemas/atom"/>\n'
            + "".join(
                f'    <category term="{c}" scheme="http://arxiv.org/schemas/atom"/>\n'
                for c in e.categories
            )
            + "  </entry>\n"
        )
    parts.append("</feed>\n")
    return "".join(parts).encode()


def rss_feed(entries: list[ArxivEntry], *, categories: str = "cs.CL+cs.LG") -> bytes:
    """An announcement feed (``rss.arxiv.org/rss/<categories>``) of ``entries``."""
    parts = [
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom" version="2.0">\n  <channel>\n'
        f"    <title>{categories} updates on arXiv.org</title>\n"
        f"    <link>http://rss.arxiv.org/rss/{categories}</link>\n"
        "    <description>updates on the arXiv.org e-print archive.</description>\n"
        "    <pubDate>Tue, 11 Mar 2025 00:00:00 -0400</pubDate>\n"
    ]
    for e in entries:
        versioned = f"{e.arxiv_id}v{e.version}"
        parts.append(
            "    <item>\n"
            f"      <title>{escape(e.title)}</title>\n"
            f"      <link>https://arxiv.org/abs/{e.arxiv_id}</link>\n"
            f"      <description>arXiv:{versioned} Announce Type: {e.announce_type} \n"
            f"Abstract: {escape(e.abstract)}</description>\n"
            f'      <guid isPermaLink="false">oai:arXiv.org:{versioned}</guid>\n'
            + "".join(f"      <category>{c}</category>\n" for c in e.categories)
            + "      <pubDate>Tue, 11 Mar 2025 00:00:00 -0400</pubDate>\n"
            f"      <arxiv:announce_type>{e.announce_type}</arxiv:announce_type>\n"
            f"      <dc:creator>{escape(', '.join(e.authors))}</dc:creator>\n"
            "    </item>\n"
        )
    parts.append("  </channel>\n</rss>\n")
    return "".join(parts).encode()
