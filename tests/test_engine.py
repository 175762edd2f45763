"""The matching engine: ranking, reasons, exclusions, topics and the array path."""

from __future__ import annotations

import pytest

from digest.matching.engine import (
    Match,
    PaperText,
    Reason,
    index_papers,
    match_edition,
    rank_subscribers,
    reference_top,
    tag_papers,
)
from digest.matching.query import Hit, parse_query


def paper(pid: int, title: str = "", abstract: str = "", authors=(), trend: float = 0.0):
    return PaperText(pid, title, abstract, tuple(authors), trend)


def top_ids(papers, filters, topics=None, topic_ids=(), **kwargs) -> list[int]:
    result = match_edition(papers, [(1, filters, list(topic_ids))], topics or {}, **kwargs)
    return [m.paper_id for m in result[1]]


def test_a_title_hit_beats_an_abstract_only_hit():
    papers = [
        paper(1, "Video models", "We use diffusion.", trend=9.0),
        paper(2, "Diffusion for video", "We study it.", trend=1.0),
    ]
    assert top_ids(papers, ["diffusion"]) == [2, 1]


def test_an_author_hit_counts_as_strong():
    papers = [
        paper(1, "Video", "by jane doe", trend=9.0),
        paper(2, "Video", "nothing", authors=["Jane Doe"], trend=1.0),
    ]
    assert top_ids(papers, ['"jane doe"', 'author:"jane doe"']) == [2, 1]


def test_more_matching_filters_beat_fewer():
    papers = [
        paper(1, "Mamba", "", trend=9.0),
        paper(2, "", "mamba and diffusion", trend=1.0),
    ]
    # Paper 1: one strong match (2 points); paper 2: two weak matches (2 points), so
    # trend decides; with a third filter matching paper 2 it wins.
    assert top_ids(papers, ["mamba", "diffusion"]) == [1, 2]
    assert top_ids(papers, ["mamba", "diffusion", "mamba diffusion"]) == [2, 1]


def test_trend_breaks_ties_then_the_lower_paper_id():
    papers = [
        paper(5, "diffusion", trend=1.0),
        paper(3, "diffusion", trend=2.0),
        paper(4, "diffusion", trend=1.0),
    ]
    assert top_ids(papers, ["diffusion"]) == [3, 4, 5]


def test_the_score_is_points_plus_the_trend_fraction():
    papers = [paper(1, "diffusion", trend=3.0), paper(2, "", "diffusion", trend=5.0)]
    result = match_edition(papers, [(7, ["diffusion"], [])], {})
    # Paper 2 has the best trend (rank 0 of 2: fraction (2 - 1 - 0) / (2 * 2) = 1/4);
    # paper 1 rank 1 (fraction 0).
    assert [(m.paper_id, m.score) for m in result[7]] == [(1, 2.0), (2, 1.25)]


def test_it_keeps_the_top_n_only():
    papers = [paper(i, "diffusion", trend=float(i)) for i in range(1, 31)]
    assert top_ids(papers, ["diffusion"], top_n=3) == [30, 29, 28]
    assert len(top_ids(papers, ["diffusion"])) == 10


def test_it_skips_papers_already_sent():
    papers = [paper(i, "diffusion", trend=float(i)) for i in range(1, 6)]
    result = match_edition(
        papers,
        [(1, ["diffusion"], []), (2, ["diffusion"], [])],
        {},
        excluded={1: {5, 3, 99}},
        top_n=3,
    )
    assert [m.paper_id for m in result[1]] == [4, 2, 1]
    assert [m.paper_id for m in result[2]] == [5, 4, 3]


def test_topics_count_like_filters():
    papers = [paper(1, "", "mamba", trend=9.0), paper(2, "", "mamba video", trend=1.0)]
    topics = {10: "video OR vision"}
    assert top_ids(papers, ["mamba"], topics, [10]) == [2, 1]


def test_an_unknown_topic_or_invalid_filter_matches_nothing():
    papers = [paper(1, "diffusion")]
    edition = index_papers(papers)
    ranking = rank_subscribers(edition, [(1, ["(broken", "-alone"], [42])], {})
    assert ranking.paper_ids[0].tolist() == [-1] * 10
    assert set(ranking.invalid) == {"(broken", "-alone"}
    assert ranking.invalid["(broken"].message == "unclosed ("


def test_a_subscriber_with_no_filters_gets_nothing():
    result = match_edition([paper(1, "diffusion")], [(1, [], []), (2, ["diffusion"], [])], {})
    assert result == {
        1: [],
        2: [Match(1, 2.0, (Reason("diffusion", None, True, (Hit("diffusion", "title"),)),))],
    }


def test_reasons_say_which_filter_or_topic_matched_and_where():
    papers = [paper(1, "Video diffusion", "a diffusion model for video")]
    result = match_edition(
        papers, [(1, ["diffusion video", "mamba", "title:video"], [3])], {3: "video OR audio"}
    )
    (match,) = result[1]
    assert [str(r) for r in match.reasons] == [
        'matched your filter `diffusion video` ("diffusion video" in title)',
        "matched your filter `title:video` (video in title)",
        "matched topic 3 (video in title, video in abstract)",
    ]
    assert match.reasons[0].filter == "diffusion video"
    assert match.reasons[2].topic_id == 3
    assert all(r.strong for r in match.reasons)


def test_a_weak_reason_is_marked_weak():
    result = match_edition([paper(1, "Video", "diffusion")], [(1, ["diffusion"], [])], {})
    (reason,) = result[1][0].reasons
    assert not reason.strong
    assert reason.hits == (Hit("diffusion", "abstract"),)


def test_identical_queries_are_evaluated_once():
    papers = [paper(1, "Video diffusion")]
    subscribers = [
        (1, ["title:video diffusion", "Diffusion  title:Videos"], []),
        (2, ["diffusion title:videos", "mamba"], [1]),
    ]
    ranking = rank_subscribers(index_papers(papers), subscribers, {1: "mamba"})
    assert ranking.distinct_queries == 2
    assert ranking.points[:, 0].tolist() == [4, 2]


def test_plain_words_in_another_order_are_another_query():
    # Spellings are made in the order written (they may join two neighbouring words), so
    # the two orders stay two queries; both stand together in "statespace models": the
    # window of the spelling "models statespace" takes its words in any order.
    papers = [paper(1, "Statespace models"), paper(2, "Models for state-space control", trend=1)]
    subscribers = [
        (1, ["state-space models", "State-Space model"], []),
        (2, ["models state-space"], []),
    ]
    ranking = rank_subscribers(index_papers(papers), subscribers, {}, top_n=2)
    assert ranking.distinct_queries == 2
    assert ranking.paper_ids.tolist() == [[2, 1], [2, 1]]
    assert ranking.points.tolist() == [[5, 5], [2.5, 2.5]]


def test_it_ranks_editions_larger_than_one_machine_word():
    papers = [
        paper(
            i,
            "diffusion" if i % 7 == 0 else "other",
            "video" if i % 3 == 0 else "",
            trend=float(i % 11),
        )
        for i in range(1, 200)
    ]
    filters = ["diffusion", "video", "diffusion video"]
    queries = [parse_query(f) for f in filters]
    result = match_edition(papers, [(1, filters, [])], {}, excluded={1: {21, 42}}, top_n=15)
    expected = reference_top(papers, queries, excluded={21, 42}, top_n=15)
    assert [m.paper_id for m in result[1]] == [pid for pid, _ in expected]


def test_array_path_pads_rows_with_fewer_matches():
    papers = [paper(1, "diffusion", trend=1.0), paper(2, "video", trend=2.0)]
    ranking = rank_subscribers(
        index_papers(papers),
        [(8, ["diffusion"], []), (9, ["video OR diffusion"], [])],
        {},
        top_n=3,
    )
    assert ranking.subscriber_ids.tolist() == [8, 9]
    assert ranking.paper_ids.tolist() == [[1, -1, -1], [2, 1, -1]]
    assert ranking.points.tolist() == [[2, 0, 0], [2, 2, 0]]
    assert ranking.scores.tolist() == [[2.0, 0.0, 0.0], [2.25, 2.0, 0.0]]


def test_matching_lists_every_paper_a_subscriber_matches_beyond_the_top_n():
    papers = [
        paper(i, "diffusion" if i % 2 else "video", "mamba" if i % 5 == 0 else "")
        for i in range(1, 140)
    ]
    ranking = rank_subscribers(
        index_papers(papers),
        [(1, ["diffusion", "(broken"], [7, 8])],
        {7: "mamba"},
        top_n=3,
        excluded={1: {1}},
    )
    assert len(ranking.paper_ids[0]) == 3
    expected = {p.id for p in papers if p.id % 2 or p.id % 5 == 0}
    matching = ranking.matching(["diffusion", "(broken"], [7, 8], {7: "mamba"})
    assert {p.id for p in papers if p.id in matching} == expected
    assert 0 not in matching and 999 not in matching and "1" not in matching


def test_an_empty_edition_matches_nothing():
    assert match_edition([], [(1, ["diffusion"], [])], {}) == {1: []}


def test_it_tags_papers_with_topics():
    papers = [paper(1, "Mamba"), paper(2, "", "state-space models"), paper(3, "Video")]
    tagged = tag_papers({1: 'mamba OR "state space"', 2: "video", 3: "audio", 4: "(bad"}, papers)
    assert tagged == {1: {1, 2}, 2: {3}, 3: set(), 4: set()}


def test_it_rejects_repeated_paper_ids_and_non_finite_trends():
    with pytest.raises(ValueError, match="distinct"):
        index_papers([paper(1), paper(1)])
    with pytest.raises(ValueError, match="finite"):
        index_papers([paper(1, trend=float("nan"))])


def test_top_n_must_be_positive():
    with pytest.raises(ValueError, match="top_n"):
        rank_subscribers(index_papers([paper(1)]), [], {}, top_n=0)


def test_an_indexed_edition_can_serve_many_calls():
    papers = [paper(1, "diffusion", trend=1.0), paper(2, "video", trend=2.0)]
    edition = index_papers(papers)
    assert match_edition(edition, [(1, ["video"], [])], {}) == match_edition(
        papers, [(1, ["video"], [])], {}
    )
    assert [m.paper_id for m in match_edition(edition, [(1, ["diffusion"], [])], {})[1]] == [1]


def test_an_edition_forgets_its_queries_past_the_bound_and_still_ranks_right(monkeypatch):
    from digest.matching import engine

    monkeypatch.setattr(engine, "MAX_REMEMBERED_QUERIES", 2)
    papers = [paper(1, "diffusion video"), paper(2, "mamba"), paper(3, "video agents")]
    edition = index_papers(papers)
    filters = ["diffusion", "mamba", "video", "agents", "video -agents"]
    for round_ in range(2):  # the second round meets queries the bank forgot
        for n, text in enumerate(filters):
            result = match_edition(edition, [(n, [text], [])], {})
            expected = reference_top(papers, [parse_query(text)])
            assert [(m.paper_id, int(m.score)) for m in result[n]] == expected, (round_, text)
            assert len(edition.queries().weak) <= 4  # entry 0 + at most bound + 1
            assert len(edition.queries().reasons) <= 7  # twice the bound, + one call's 3


def test_reasons_show_each_subscriber_their_own_words_never_a_key():
    papers = [paper(1, "Time series forecasting with KV caches", "time-series and movies")]
    subscribers = [
        (1, ['"time series"', '"KV caches"', "movies"], []),
        (2, ['"Time Series"', '"kv cache"', "movie"], []),  # same queries, other spellings
    ]
    result = match_edition(papers, subscribers, {})
    assert [str(r) for r in result[1][0].reasons] == [
        'matched your filter `"time series"` ("time series" in title, "time series" in abstract)',
        'matched your filter `"KV caches"` ("kv caches" in title)',
        "matched your filter `movies` (movies in abstract)",
    ]
    assert [str(r) for r in result[2][0].reasons] == [
        'matched your filter `"Time Series"` ("time series" in title, "time series" in abstract)',
        'matched your filter `"kv cache"` ("kv cache" in title)',
        "matched your filter `movie` (movie in abstract)",
    ]


def test_compounds_meet_in_the_engine_in_every_spelling():
    papers = [
        paper(1, "Multi-modal pre-training"),
        paper(2, "Multimodal pretraining"),
        paper(3, "multi modal pre training"),
        paper(4, "Modal logic before training"),
    ]
    for text in ["multimodal pretraining", "multi-modal pre-training", '"multi modal pretraining"']:
        assert sorted(top_ids(papers, [text])) == [1, 2, 3], text


# Plain words: together or scattered


def state_space_papers() -> list[PaperText]:
    """Papers matching ``state space models``, the ones holding the words together with
    the lowest trends, so that only the words' placing can put them first."""
    return [
        paper(1, "Scaling state space models", "We study them.", trend=1.0),
        paper(2, "Sparse models", "The state of the art is in a latent space.", trend=9.0),
        paper(3, "Selective scans", "We build models whose state space grows.", trend=2.0),
        paper(4, "Fast scans", "Our models keep a hidden state in the embedding space.", trend=8.0),
        paper(5, "Fast scans", "State space models, selective ones.", trend=3.0),
    ]


def test_plain_words_standing_together_rank_above_the_same_words_scattered():
    papers = state_space_papers()
    # Title hits first (1 together, 2 scattered), then abstract-only hits (3 and 5
    # together, in trend order, then 4 scattered).
    assert top_ids(papers, ["state space models"]) == [1, 2, 5, 3, 4]
    expected = reference_top(papers, [parse_query("state space models")])
    result = match_edition(papers, [(1, ["state space models"], [])], {})
    assert [(m.paper_id, m.score // 0.5 * 0.5) for m in result[1]] == expected
    assert [points for _, points in expected] == [2.5, 2, 1.5, 1.5, 1]


def test_together_means_within_two_more_words_than_the_filter_has():
    papers = [
        paper(1, "", "models with state in space", trend=3.0),  # 3 words within 5
        paper(2, "", "models with a space of state", trend=2.0),  # within 6: scattered
        paper(3, "", "state-space models", trend=1.0),  # as the phrase
    ]
    ranking = rank_subscribers(index_papers(papers), [(1, ["state space models"], [])], {})
    assert ranking.paper_ids[0, :3].tolist() == [1, 3, 2]
    assert ranking.points[0, :3].tolist() == [1.5, 1.5, 1]


def test_together_counts_every_spelling_of_a_compound_both_ways():
    # A hyphenated or joined word stands together whichever way the filter and the paper
    # spell it: the window is that of each spelling (multimodal fusion: 2 words, 4 wide).
    papers = [
        paper(1, "", "multimodal late fusion of signals", trend=2.0),
        paper(2, "", "multi-modal late fusion of signals", trend=3.0),
        paper(3, "", "multimodal signals meet a late and slow fusion", trend=1.0),
    ]
    edition = index_papers(papers)
    for text in ("multi-modal fusion", "multimodal fusion"):
        ranking = rank_subscribers(edition, [(1, [text], [])], {})
        assert ranking.paper_ids[0, :3].tolist() == [2, 1, 3], text
        assert ranking.points[0, :3].tolist() == [1.5, 1.5, 1], text
        expected = reference_top(papers, [parse_query(text)])
        assert [points for _, points in expected] == [1.5, 1.5, 1], text


def test_quoted_words_operators_and_fields_earn_nothing_for_standing_together():
    papers = state_space_papers()
    for text in ['"state space" models', "state space models -vision", "title:state space models"]:
        query = parse_query(text)
        result = match_edition(papers, [(1, [text], [])], {})
        expected = reference_top(papers, [query])
        assert [(m.paper_id, float(int(m.score))) for m in result[1]] == expected, text
        assert all(points in (1, 2) for _, points in expected), text


def test_together_adds_less_than_a_title_hit_and_less_than_another_filter():
    papers = [
        paper(1, "Models", "state and space and other things we say", trend=1.0),
        paper(2, "Scans", "state space models", trend=2.0),
        paper(3, "Scans", "state space models and mamba", trend=0.0),
    ]
    # 1: title hit, scattered (2); 2: abstract, together (1.5); 3: also matches mamba (2.5).
    assert top_ids(papers, ["state space models", "mamba"]) == [3, 1, 2]


def test_a_reason_names_the_phrase_where_the_words_stand_together():
    result = match_edition(state_space_papers(), [(1, ["State Space Models"], [])], {})
    reasons = {m.paper_id: str(m.reasons[0]) for m in result[1]}
    mine = "matched your filter `State Space Models`"
    assert reasons[1] == f'{mine} ("state space models" in title)'
    assert reasons[3] == f'{mine} ("state space models" in abstract)'
    # Together in the abstract only: the title's words say why the match is strong.
    papers = [paper(6, "Models", "We build state space models.")]
    [match] = match_edition(papers, [(1, ["state space models"], [])], {})[1]
    assert str(match.reasons[0]) == (
        'matched your filter `state space models` ("state space models" in abstract, '
        "models in title)"
    )
    # Scattered: the words, each where it is found.
    assert reasons[2] == (f"{mine} (models in title, space in abstract, state in abstract)")


def test_subscribers_of_every_width_ranked_in_blocks_get_the_reference_top_n():
    """Rows are added up in blocks of similar width (1 to 20 filters and topics here, a
    filter that does not parse among them): each subscriber still gets the reference's
    top N, points and matched filters, whatever block they land in."""
    words = ["mamba", "diffusion", "video", "state space", "agents", "robot", "vision"]
    papers = [
        paper(
            i,
            f"{words[i % 7]} {words[(i * 3) % 7]} models",
            f"We study {words[(i * 5) % 7]} and {words[(i + 2) % 7]} with {words[i % 7]}.",
            trend=float(i % 5),
        )
        for i in range(1, 41)
    ]
    topics = {7: "robot OR agents", 8: '"state space"'}
    subscribers = []
    for sid in range(30):
        width = 1 + (sid * 7) % 20
        filters = [
            words[(sid + j) % 7] + ("" if j < 7 else f" {words[j % 7]}") for j in range(width)
        ]
        if sid % 4 == 0:
            filters[len(filters) // 2] = "the of"  # refused: matches nothing
        elif sid % 4 == 1:
            filters[-1] = "the of"  # last in the row
        subscribers.append((sid, filters, [7, 8][: sid % 3]))
    excluded = {sid: {sid % 40 + 1, (sid * 3) % 40 + 1} for sid in range(0, 30, 3)}
    edition = index_papers(papers)
    one_block = rank_subscribers(edition, subscribers, topics, excluded=excluded, top_n=6)
    blocks = rank_subscribers(edition, subscribers, topics, excluded=excluded, top_n=6, chunk=3)
    for row, (sid, filters, topic_ids) in enumerate(subscribers):
        queries = []
        for text in filters + [topics[t] for t in topic_ids]:
            try:
                queries.append(parse_query(text))
            except ValueError:
                queries.append(None)
        expected = reference_top(papers, queries, excluded=excluded.get(sid, ()), top_n=6)
        for ranking in (one_block, blocks):
            got = [
                (int(pid), float(pts))
                for pid, pts in zip(ranking.paper_ids[row], ranking.points[row], strict=True)
                if pid >= 0
            ]
            assert got == expected, sid
        assert blocks.matched_items[row] == one_block.matched_items[row]


def test_a_refused_filter_keeps_nothing_of_the_chunk_that_met_it_alive():
    # The edition remembers each refused filter's error for the rest of the run; the
    # error must not hold the frames (subscribers, arrays, ranking) of that chunk.
    import gc

    from digest.matching.engine import Ranking
    from digest.matching.ranking import (
        Candidate,
        SubscriberSpec,
        prepare_edition,
        select_for_subscribers,
    )

    edition = prepare_edition([Candidate(1, "Diffusion for video", "We study it.")])
    chunk = [SubscriberSpec(7, ("the of and", "diffusion"))]
    chosen = select_for_subscribers(chunk, edition, limit=10, excluded={}, topics={})
    assert [s.paper_id for s in chosen[7]] == [1]
    error = edition.edition.queries().invalid["the of and"]
    assert "nearly every paper" in error.message and error.__traceback__ is None
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, Ranking)]
