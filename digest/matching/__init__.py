"""Matching: which papers each subscriber gets, in what order, and why.

* :mod:`~digest.matching.query` — the filter language: parser and reference evaluator;
* :mod:`~digest.matching.engine` — the same language over a whole edition at once;
* :mod:`~digest.matching.ranking` — papers and subscribers in, selections and reasons out;
* :mod:`~digest.matching.trend` — the trend formula and upvote growth;
* :mod:`~digest.matching.topics` — topic previews and re-tagging;
* :mod:`~digest.matching.blocked` — blocked terms in filters.
"""
