"""Offline evaluation of learning from readers: keyword-only digests against keyword +
feedback digests, for simulated readers over ten days of real papers.

    python bench/learn_eval.py                     # the table
    python bench/learn_eval.py --json              # machine output (one JSON document)
    python bench/learn_eval.py --min-labelled 3    # explore a constant (monkeypatched here)

**Papers.** The real ones the tests keep: `tests/data/papers.jsonl` (188, title and
abstract, given ids here), the Hugging Face API answer
(`hf_api_daily_papers_2026-06-12.json`, 30, read by `digest.sources.hf.parse_api`) and
the arXiv API/RSS/Atom files of `tests/data/sources/` (8 fresh entries, read by
`digest.sources.arxiv.parse_feed`), deduplicated by title.

**Topics (the hidden truth).** The papers carry no topic labels, so labels are made by a
clustering printed with each topic's top words and size, to be inspected: unigram
*counts* of title and abstract (no idf, no word pairs), reduced by LSA (TruncatedSVD,
`--lsa` dimensions, fixed seed), rows normalised, then KMeans (`--topics` clusters,
fixed seed). Caveat: the clusters come from the same texts the readers' models read, which
favours a text model (a topic is a region of word space, which a tf-idf model finds
easily; a real reader's interest is not one). That is reduced, not removed, by clustering
on a representation other than the model's (counts rather than tf-idf, unigrams rather
than unigrams and pairs, a 40-dimensional projection rather than the words themselves),
and the keyword interests are drawn from the same words, which favours keywords too.

**Readers.** `--readers` simulated readers (fixed seed): each has 1–2 hidden relevant
topics and 1–2 keyword interests, words of their topics that cover them only in part and
also match papers of other topics (a word's recall on its topic and its precision are
bounded, see `pick_keywords`); one reader in `--exclude-every` also has an exclusion
(`-word`, a word that matches their keyword matches but few relevant papers). Printed:
the keywords' coverage (recall of keywords alone on relevant papers over all days) and
precision. Exclusions are checked: no paper shown, in either arm, ever matches one
(asserted, with the word matched on its own as a check independent of the plan).

**Days.** The papers are shuffled (fixed seed) and spread over 10 days (`--days`), ~equally, each
day's papers first seen on that day. Each day, for every reader:

- keyword-only: the day's `digest.match.Matcher`, `select_many` (the real matcher);
- keyword + feedback: those selections through the real `Learning.refine` with each
  reader's `Taste` fitted by the real `fit_taste` from their votes so far, over one text
  model fitted once on all papers with `fit_vectorizer` (as the service fits it on its
  store).

The digest shown is its sections in order (`Selection.sections`: matching, trending
(none here), suggested). **P@10** = relevant papers among the first 10 shown /
min(10, shown), 0 when nothing is shown; **P@10/10** = relevant among the first 10 / 10
(the same with a fixed denominator); **recall** = relevant shown / relevant that day,
over reader-days with a relevant paper. The reader then clicks on up to their cap of
papers shown in the feedback digest (caps drawn 1..`--max-clicks` per reader, papers
drawn at random among those shown): "more like this" on relevant ones, "less" on others.

**After N clicks**: for each reader the first digest made with at least N clicks so far
(one per reader), feedback against keyword-only on those same reader-days; the ratio is of
the means, with a paired bootstrap interval over readers. **Clicks to beat**: the
smallest N whose feedback P@10 is above keyword-only.

**Reading the figures.** With ~22 papers a day and `max_papers` 20, a reader's keyword
matches (~2–3 a day) are all shown, first, and fewer than 10 papers are shown in all: P@10
is then the precision of the whole digest, re-ordering keyword matches cannot change it,
and neither arm can drop an irrelevant keyword match (keywords are hard rules). Only
the suggestions move it, so the table also gives their number and precision, and an
upper bound: the keyword-only digest plus perfect suggestions (the reader's relevant
papers no keyword or exclusion matched, up to their `suggestions`). Also: the text model
is fitted on these 223 papers only, so its background (weak negatives, and the sample a
suggestion must outscore by `SUGGEST_QUANTILE`) is every paper, relevant ones included;
in the service it is a sample of 20,000.

Constants of `digest.learn` can be varied for exploration (`--min-labelled`,
`--quantile` (SUGGEST_QUANTILE), `--similarity-floor`, `--background-weight`, `--negative-pull`,
`--wide`, `--blend`): they are monkeypatched in this process only, the modules are not
edited. `--blend A` orders keyword matches by model score + A x keyword score instead of
the model alone.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import digest.learn.rank as learn_rank  # noqa: E402
import digest.learn.taste as learn_taste  # noqa: E402
from digest.learn.rank import Learning  # noqa: E402
from digest.learn.taste import Taste, fit_taste  # noqa: E402
from digest.learn.text import TextModel, fit_vectorizer  # noqa: E402
from digest.match import Matcher, Selection, parse_interests  # noqa: E402
from digest.match.query import Interests  # noqa: E402
from digest.match.results import Match  # noqa: E402
from digest.paper import Paper  # noqa: E402
from digest.sources import arxiv, hf  # noqa: E402
from digest.store.feedback import LESS, MORE, Vote  # noqa: E402
from digest.subscriber import Subscriber  # noqa: E402

DATA = ROOT / "tests" / "data"
ARXIV_FILES = (
    "arxiv_api_query_2026-06-14.xml",
    "arxiv_atom_2026-09-25_excerpt.xml",
    "arxiv_rss_2026-09-24_excerpt.xml",
)
START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
DAYS = 10  # the default of --days
MAX_PAPERS = 20  # [match] max_papers, the service's default
CLUSTER_SEED = 1  # the topics are the same whatever --seed
TOPIC_WORDS = 60  # a topic's words, by how much more its papers use them than the rest
ENRICHED = 2.5  # a keyword's matches are this many times likelier of its topic than at random
THRESHOLDS_N = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20)
_WORD = re.compile(r"[a-z][a-z]{2,}")


# --- papers and topics -------------------------------------------------------------------


def load_papers() -> list[Paper]:
    """The real papers, deduplicated by title (case and spacing folded)."""
    papers: list[Paper] = []
    for number, line in enumerate((DATA / "papers.jsonl").read_text("utf-8").splitlines()):
        row = json.loads(line)
        papers.append(Paper(id=f"2601.{number:05d}", title=row["title"], abstract=row["abstract"]))
    sources = DATA / "sources"
    papers += hf.parse_api(
        (sources / "hf_api_daily_papers_2026-06-12.json").read_bytes(), "api"
    ).papers
    for name in ARXIV_FILES:
        papers += arxiv.parse_feed((sources / name).read_bytes(), name).papers
    seen: set[str] = set()
    unique = []
    for paper in papers:
        key = " ".join(paper.title.lower().split())
        if key not in seen and paper.abstract:
            seen.add(key)
            unique.append(paper)
    return unique


@dataclass
class Topics:
    """The hidden topic of each paper (index into `papers`), and what each topic is."""

    labels: np.ndarray
    words: list[list[str]]  # the top words, printed
    sizes: list[int]
    vocabulary: list[set[str]]  # the top `TOPIC_WORDS` words: what keywords are drawn from


def cluster(papers: Sequence[Paper], topics: int, dimensions: int, seed: int) -> Topics:
    """KMeans on LSA of unigram counts (see the module docstring)."""
    counter = CountVectorizer(
        stop_words="english", min_df=2, max_df=0.5, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b"
    )
    counts = counter.fit_transform([f"{p.title} {p.abstract}" for p in papers])
    svd = TruncatedSVD(n_components=dimensions, random_state=seed)
    reduced = normalize(svd.fit_transform(counts))
    labels = KMeans(n_clusters=topics, n_init=20, random_state=seed).fit_predict(reduced)
    vocabulary = counter.get_feature_names_out()
    share = normalize(counts.astype(np.float64), norm="l1")
    overall = np.asarray(share.mean(axis=0)).ravel()
    words, sizes, tops = [], [], []
    for topic in range(topics):
        members = labels == topic
        inside = np.asarray(share[members].mean(axis=0)).ravel()
        lift = inside - overall  # words this topic uses more than the rest
        top = [str(vocabulary[i]) for i in np.argsort(-lift)[:TOPIC_WORDS]]
        words.append(top[:8])
        tops.append(set(top))
        sizes.append(int(members.sum()))
    return Topics(labels, words, sizes, tops)


# --- readers -----------------------------------------------------------------------------


@dataclass
class Reader:
    """A simulated reader: hidden topics, the interests they wrote, their clicks."""

    subscriber: Subscriber
    topics: tuple[int, ...]
    keywords: tuple[str, ...]
    exclusion: str | None
    interests: Interests
    relevant: set[str]  # ids of the papers of their topics
    cap: int  # clicks per day at most
    votes: list[Vote] = field(default_factory=list)
    clicks: int = 0


class WordMasks:
    """Which papers a single word matches, by the real matcher over all papers."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.matcher = Matcher(papers)
        self.ids = [p.id for p in self.matcher.papers]
        self._known: dict[str, frozenset[str]] = {}

    def __call__(self, word: str) -> frozenset[str]:
        if word not in self._known:
            wanted, _ = self.matcher.masks(parse_interests(word))
            self._known[word] = frozenset(self.ids[i] for i in np.flatnonzero(wanted))
        return self._known[word]


def candidate_words(papers: Sequence[Paper]) -> list[str]:
    """Plain words used by 3 or more papers and by at most 30 % of them."""
    counts: dict[str, int] = {}
    for paper in papers:
        for word in set(_WORD.findall(f"{paper.title} {paper.abstract}".lower())):
            counts[word] = counts.get(word, 0) + 1
    return sorted(w for w, n in counts.items() if 3 <= n <= 0.3 * len(papers))


def pick_keywords(
    rng: random.Random,
    topics: tuple[int, ...],
    by_topic: dict[int, set[str]],
    relevant: set[str],
    vocabulary: list[set[str]],
    masks: WordMasks,
    count: int,
) -> tuple[str, ...] | None:
    """`count` words, each from one of the reader's topics (in turn): one of the topic's
    `TOPIC_WORDS` words (`cluster`), enriched in it (its matches at least `ENRICHED` times
    as likely to be of the topic as a paper is), covering 15–60 % of the topic, 30–85 %
    of its matches relevant to the reader (so it matches papers of other topics too).
    None when a topic has no such word."""
    total = sum(len(ids) for ids in by_topic.values())
    chosen: list[str] = []
    for k in range(count):
        topic = by_topic[topics[k % len(topics)]]
        fits = []
        for word in sorted(vocabulary[topics[k % len(topics)]]):
            found = masks(word)
            if not found or word in chosen:
                continue
            recall = len(found & topic) / len(topic)
            precision = len(found & relevant) / len(found)
            enriched = len(found & topic) / len(found) >= ENRICHED * len(topic) / total
            if enriched and 0.15 <= recall <= 0.6 and 0.3 <= precision <= 0.85:
                fits.append(word)
        if not fits:
            return None
        chosen.append(rng.choice(fits))
    return tuple(chosen)


def pick_exclusion(
    rng: random.Random, keywords: tuple[str, ...], relevant: set[str], words: list[str],
    masks: WordMasks,
) -> str | None:  # fmt: skip
    """A word that matches 2+ of the reader's irrelevant keyword matches and at most 10 %
    of its matches relevant: what a reader would exclude."""
    matched = frozenset().union(*(masks(w) for w in keywords))
    noise = matched - relevant
    fits = []
    for word in words:
        found = masks(word)
        if word in keywords or not found:
            continue
        if len(found & noise) >= 2 and len(found & relevant) <= 0.1 * len(found):
            fits.append(word)
    return rng.choice(fits) if fits else None


def make_readers(
    papers: Sequence[Paper], topics: Topics, args: argparse.Namespace, seed: int, masks: WordMasks
) -> list[Reader]:
    """`args.readers` readers drawn with `seed` (see the module docstring)."""
    rng = random.Random(seed)
    by_topic: dict[int, set[str]] = {}
    for paper, label in zip(papers, topics.labels, strict=True):
        by_topic.setdefault(int(label), set()).add(paper.id)
    usable = [t for t, ids in sorted(by_topic.items()) if len(ids) >= 5]
    words = candidate_words(papers)
    readers: list[Reader] = []
    while len(readers) < args.readers:
        chosen = tuple(rng.sample(usable, rng.choice((1, 2))))
        relevant = set().union(*(by_topic[t] for t in chosen))
        keywords = pick_keywords(
            rng, chosen, by_topic, relevant, topics.vocabulary, masks, rng.choice((1, 2))
        )
        if keywords is None:
            continue
        number = len(readers) + 1
        exclusion = None
        if number % args.exclude_every == 0:
            exclusion = pick_exclusion(rng, keywords, relevant, words, masks)
        text = ", ".join([*keywords, *([f"-{exclusion}"] if exclusion else [])])
        subscriber = Subscriber(
            id=number, email=f"reader{number}@example.net", interests=text, status="active",
            send_time="08:00", timezone="UTC", created_at=START, suggestions=args.suggestions,
        )  # fmt: skip
        readers.append(
            Reader(
                subscriber,
                chosen,
                keywords,
                exclusion,
                parse_interests(text),
                relevant,
                cap=rng.randint(1, args.max_clicks),
            )
        )
    return readers


# --- the simulation ----------------------------------------------------------------------


def spread(papers: Sequence[Paper], seed: int, count: int) -> list[list[Paper]]:
    """The papers shuffled and dealt over `count` days, each first seen on its day."""
    order = list(papers)
    random.Random(seed).shuffle(order)
    days: list[list[Paper]] = [[] for _ in range(count)]
    for number, paper in enumerate(order):
        day = number % count
        seen = START + timedelta(days=day, minutes=number)
        days[day].append(replace(paper, first_seen_at=seen))
    return days


def shown(selection: Selection) -> list[Match]:
    """The digest's papers in the order it shows them (its sections in order)."""
    return [match for _, matches in selection.sections for match in matches]


@dataclass
class Outcome:
    """One reader-day in one arm."""

    p10: float
    p10_fixed: float
    recall: float | None
    shown: int
    suggested: int
    suggested_relevant: int


def outcome(selection: Selection, relevant: set[str], relevant_today: int) -> Outcome:
    papers = shown(selection)
    top = papers[:10]
    hits = sum(m.paper.id in relevant for m in top)
    found = sum(m.paper.id in relevant for m in papers)
    return Outcome(
        p10=hits / len(top) if top else 0.0,
        p10_fixed=hits / 10,
        recall=found / relevant_today if relevant_today else None,
        shown=len(papers),
        suggested=len(selection.suggested),
        suggested_relevant=sum(m.paper.id in relevant for m in selection.suggested),
    )


def oracle(matcher: Matcher, reader: Reader, selection: Selection, relevant_today: int) -> Outcome:
    """The keyword-only digest with perfect suggestions: up to the reader's `suggestions`
    relevant papers of the day no keyword or exclusion matched, added after the keyword
    matches as `Learning.refine` adds its own (the keyword matches unchanged). An upper
    bound of what suggestions alone can do here, whatever the model."""
    wanted, excluded = matcher.masks(reader.interests)
    papers = [m.paper.id for m in shown(selection)]
    extra = [
        paper.id
        for column, paper in enumerate(matcher.papers)
        if paper.id in reader.relevant and not wanted[column] and not excluded[column]
        and paper.id not in papers
    ][: reader.subscriber.suggestions]  # fmt: skip
    everything = papers + extra
    hits = sum(paper in reader.relevant for paper in everything[:10])
    found = sum(paper in reader.relevant for paper in everything)
    return Outcome(
        p10=hits / len(everything[:10]) if everything else 0.0,
        p10_fixed=hits / 10,
        recall=found / relevant_today if relevant_today else None,
        shown=len(everything),
        suggested=len(extra),
        suggested_relevant=len(extra),
    )


def check_exclusions(reader: Reader, selection: Selection, masks: WordMasks) -> None:
    """No paper shown matches the reader's exclusion (matched on its own, as a keyword)."""
    if reader.exclusion is None:
        return
    excluded = masks(reader.exclusion)
    bad = [m.paper.id for m in shown(selection) if m.paper.id in excluded]
    assert not bad, f"reader {reader.subscriber.id} was shown excluded papers {bad}"


def _interests_of(interests: dict[int, Interests]) -> Callable[[Subscriber], Interests]:
    """What `Learning.refine` asks of a reader: their parsed interests."""
    return lambda who: interests[who.id]


def simulate(
    papers: Sequence[Paper],
    readers: list[Reader],
    text: TextModel,
    seed: int,
    masks: WordMasks,
    days: int,
) -> list[dict[str, Any]]:
    """`days` days; per reader-day: clicks so far, both arms' outcomes."""
    rng = random.Random(seed * 7919 + 1)
    vectors_all = text.transform(papers)
    vectors = {p.id: vectors_all[i] for i, p in enumerate(papers)}
    titles = {p.id: p.title for p in papers}
    learning = Learning(text)
    records: list[dict[str, Any]] = []
    vote_id = 0
    for day, todays in enumerate(spread(papers, seed, days)):
        matcher = Matcher(todays)
        keyword = list(matcher.select_many([(r.subscriber, r.interests, None) for r in readers],
                                           MAX_PAPERS))  # fmt: skip
        tastes: dict[int, Taste] = {}
        for reader in readers:
            taste = fit_taste(reader.votes, vectors, titles, text) if reader.votes else None
            if taste is not None:
                tastes[reader.subscriber.id] = taste
        rated = {r.subscriber.id: {v.paper_id for v in r.votes} for r in readers}
        interests = {r.subscriber.id: r.interests for r in readers}
        interests_of = _interests_of(interests)
        learned = list(
            learning.refine(matcher, list(keyword), interests_of, tastes, rated, MAX_PAPERS)
        )
        today = {p.id for p in todays}
        for reader, (_, plain), (_, fed) in zip(readers, keyword, learned, strict=True):
            check_exclusions(reader, plain, masks)
            check_exclusions(reader, fed, masks)
            relevant_today = len(reader.relevant & today)
            taste = tastes.get(reader.subscriber.id)
            records.append({
                "seed": seed, "reader": reader.subscriber.id, "day": day, "clicks": reader.clicks,
                "liked": sum(v.vote > 0 for v in reader.votes),
                "mode": taste.mode if taste else None, "relevant": relevant_today,
                "keyword": outcome(plain, reader.relevant, relevant_today).__dict__,
                "feedback": outcome(fed, reader.relevant, relevant_today).__dict__,
                "oracle": oracle(matcher, reader, plain, relevant_today).__dict__,
            })  # fmt: skip
            seen = shown(fed)
            for match in rng.sample(seen, min(reader.cap, len(seen))):
                vote_id += 1
                verdict = MORE if match.paper.id in reader.relevant else LESS
                at = START + timedelta(days=day, hours=12)
                reader.votes.append(Vote(vote_id, reader.subscriber.id, match.paper.id,
                                         verdict, "email", at))  # fmt: skip
                reader.clicks += 1
    return records


# --- figures -----------------------------------------------------------------------------


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def per_day(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for day in range(max(r["day"] for r in records) + 1):
        these = [r for r in records if r["day"] == day]
        with_relevant = [r for r in these if r["relevant"]]
        rows.append({
            "day": day + 1, "reader_days": len(these),
            "clicks": mean([r["clicks"] for r in these]),
            "modelled": sum(r["mode"] is not None for r in these),
            "linear": sum(r["mode"] == "linear" for r in these),
            **{f"{arm}_{name}": mean([r[arm][name] for r in these])
               for arm in ("keyword", "feedback") for name in ("p10", "p10_fixed", "shown")},
            **{f"{arm}_recall": mean([r[arm]["recall"] for r in with_relevant])
               for arm in ("keyword", "feedback")},
            "suggested": mean([r["feedback"]["suggested"] for r in these]),
            "suggested_precision": share_relevant(these),
            "liked": mean([r["liked"] for r in these]),
        })  # fmt: skip
    return rows


def share_relevant(records: list[dict[str, Any]]) -> float:
    """Of all the papers suggested in these reader-days, the share that is relevant."""
    made = sum(r["feedback"]["suggested"] for r in records)
    good = sum(r["feedback"]["suggested_relevant"] for r in records)
    return good / made if made else float("nan")


def first_after(records: list[dict[str, Any]], clicks: int) -> list[dict[str, Any]]:
    """Per reader, the first digest made with at least `clicks` clicks so far."""
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r["day"]):
        key = (record["seed"], record["reader"])
        if record["clicks"] >= clicks and key not in found:
            found[key] = record
    return list(found.values())


def bootstrap_ratio(chosen: list[dict[str, Any]], seed: int, rounds: int = 2000) -> list[float]:
    """A 95 % paired bootstrap interval (over readers) of mean feedback / keyword P@10."""
    if not chosen:
        return [float("nan"), float("nan")]
    fed = np.array([r["feedback"]["p10"] for r in chosen])
    plain = np.array([r["keyword"]["p10"] for r in chosen])
    picks = np.random.default_rng(seed).integers(0, len(chosen), (rounds, len(chosen)))
    base = plain[picks].mean(axis=1)
    ratios = fed[picks].mean(axis=1) / np.where(base > 0, base, np.nan)
    with warnings.catch_warnings():  # resamples whose keyword mean is 0 have no ratio
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(ratios, [2.5, 97.5])
    return [float(low), float(high)]


def after_clicks(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for clicks in THRESHOLDS_N:
        chosen = first_after(records, clicks)
        if not chosen:
            continue
        plain = mean([r["keyword"]["p10"] for r in chosen])
        fed = mean([r["feedback"]["p10"] for r in chosen])
        rec = [r for r in chosen if r["relevant"]]
        rows.append({
            "clicks": clicks, "readers": len(chosen), "day": mean([r["day"] + 1 for r in chosen]),
            "keyword_p10": plain, "feedback_p10": fed,
            "ratio": fed / plain if plain else float("nan"),
            "ratio_ci95": bootstrap_ratio(chosen, clicks),
            "keyword_p10_fixed": mean([r["keyword"]["p10_fixed"] for r in chosen]),
            "feedback_p10_fixed": mean([r["feedback"]["p10_fixed"] for r in chosen]),
            "keyword_recall": mean([r["keyword"]["recall"] for r in rec]),
            "feedback_recall": mean([r["feedback"]["recall"] for r in rec]),
            "suggested": mean([r["feedback"]["suggested"] for r in chosen]),
            "suggested_precision": share_relevant(chosen),
            "oracle_p10": mean([r["oracle"]["p10"] for r in chosen]),
            "oracle_ratio": mean([r["oracle"]["p10"] for r in chosen]) / plain
            if plain else float("nan"),
        })  # fmt: skip
    return rows


def keyword_quality(readers: list[Reader], masks: WordMasks) -> dict[str, float]:
    """Keywords alone over all papers: recall on relevant papers, precision."""
    recalls, precisions = [], []
    for reader in readers:
        wanted = frozenset().union(*(masks(w) for w in reader.keywords))
        if reader.exclusion:
            wanted -= masks(reader.exclusion)
        recalls.append(len(wanted & reader.relevant) / len(reader.relevant))
        precisions.append(len(wanted & reader.relevant) / len(wanted) if wanted else 0.0)
    return {"recall": mean(recalls), "precision": mean(precisions),
            "recall_min": min(recalls), "recall_max": max(recalls)}  # fmt: skip


# --- constants explored ------------------------------------------------------------------


def patch_constants(args: argparse.Namespace) -> dict[str, Any]:
    """Apply the flags' constants to digest.learn in this process; what was changed."""
    changed: dict[str, Any] = {}
    constants = [
        ("min_labelled", learn_taste, "MIN_LABELLED"),
        ("quantile", learn_taste, "SUGGEST_QUANTILE"),
        ("similarity_floor", learn_taste, "SIMILARITY_FLOOR"),
        ("background_weight", learn_taste, "BACKGROUND_WEIGHT"),
        ("negative_pull", learn_taste, "NEGATIVE_PULL"),
        ("wide", learn_rank, "WIDE"),
    ]
    for flag, module, name in constants:
        value = getattr(args, flag)
        if value is not None:
            setattr(module, name, value)
            changed[name] = value
    if args.blend is not None:
        alpha = changed["blend"] = args.blend

        def order(self: Any, matches: Any) -> list[Match]:
            column, scores = self.column, self.scores
            return sorted(
                matches, key=lambda m: (-(scores[column(m.paper.id)] + alpha * m.score), m.paper.id)
            )

        learn_rank._Reader.order = order  # type: ignore[method-assign]
    return changed


# --- output ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    changed = patch_constants(args)
    papers = load_papers()
    topics = cluster(papers, args.topics, args.lsa, CLUSTER_SEED)
    vectorizer, background = fit_vectorizer(papers)
    text = TextModel(1, vectorizer, background)
    masks = WordMasks(papers)
    records: list[dict[str, Any]] = []
    readers_all: list[Reader] = []
    for seed in range(args.seed, args.seed + args.seeds):
        readers = make_readers(papers, topics, args, seed, masks)
        readers_all += readers
        records += simulate(papers, readers, text, seed, masks, args.days)
    after = after_clicks(records)
    five = next((row for row in after if row["clicks"] == 5), None)
    above = [row["feedback_p10"] > row["keyword_p10"] for row in after]
    beat = next((row["clicks"] for row, up in zip(after, above, strict=True) if up), None)
    # The fewest clicks from which feedback is above keyword-only at every N measured.
    stays = next((row["clicks"] for k, row in enumerate(after) if all(above[k:])), None)
    return {
        "papers": len(papers), "days": args.days, "readers": len(readers_all), "seeds": args.seeds,
        "changed": changed,
        "topics": [{"topic": t, "size": s, "words": w}
                   for t, (s, w) in enumerate(zip(topics.sizes, topics.words, strict=True))],
        "keywords_alone": keyword_quality(readers_all, masks),
        "exclusions": sum(r.exclusion is not None for r in readers_all),
        "readers_sample": [{"interests": r.subscriber.interests, "topics": list(r.topics),
                            "cap": r.cap} for r in readers_all[:6]],
        "per_day": per_day(records),
        "after_clicks": after,
        "after_5": five,
        "clicks_to_beat": beat, "clicks_to_stay_above": stays,
        "seconds": time.perf_counter() - started,
    }  # fmt: skip


def show(result: dict[str, Any]) -> None:
    print(f"{result['papers']} real papers over {result['days']} days; {result['readers']} "
          f"simulated readers ({result['seeds']} seed(s)); constants changed: "
          f"{result['changed'] or 'none'}")  # fmt: skip
    print("\ntopics (KMeans on LSA of unigram counts; the same texts the model reads, which "
          "favours text models):")  # fmt: skip
    for topic in result["topics"]:
        print(f"  {topic['topic']}: {topic['size']:3} papers  {' '.join(topic['words'])}")
    quality = result["keywords_alone"]
    print(f"\nkeywords alone, over all papers: recall on relevant {quality['recall']:.2f} "
          f"(readers {quality['recall_min']:.2f}–{quality['recall_max']:.2f}), precision "
          f"{quality['precision']:.2f}; {result['exclusions']} readers with an exclusion, "
          "none ever shown an excluded paper (asserted)")  # fmt: skip
    for sample in result["readers_sample"]:
        print(f"  e.g. topics {sample['topics']}, cap {sample['cap']}/day: {sample['interests']}")
    print("\nper day (mean over readers; kw = keyword-only, fb = keyword + feedback)")
    print(
        "| day | clicks so far (of them more) | modelled (linear) | P@10 kw | P@10 fb "
        "| P@10/10 kw | P@10/10 fb | recall kw | recall fb | shown kw | shown fb "
        "| suggested (relevant) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in result["per_day"]:
        print(f"| {row['day']} | {row['clicks']:.1f} ({row['liked']:.1f} more) "
              f"| {row['modelled']} ({row['linear']}) "
              f"| {row['keyword_p10']:.3f} | {row['feedback_p10']:.3f} "
              f"| {row['keyword_p10_fixed']:.3f} | {row['feedback_p10_fixed']:.3f} "
              f"| {row['keyword_recall']:.3f} | {row['feedback_recall']:.3f} "
              f"| {row['keyword_shown']:.1f} | {row['feedback_shown']:.1f} "
              f"| {row['suggested']:.1f} ({row['suggested_precision']:.0%}) |")  # fmt: skip
    print("\nafter N clicks (each reader's first digest made with >= N clicks so far)")
    print(
        "| N | readers | mean day | P@10 kw | P@10 fb | ratio (95% CI) | P@10/10 kw | "
        "P@10/10 fb | recall kw | recall fb | suggested (relevant) |"
    )
    print("|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for row in result["after_clicks"]:
        low, high = row["ratio_ci95"]
        print(f"| {row['clicks']} | {row['readers']} | {row['day']:.1f} "
              f"| {row['keyword_p10']:.3f} | {row['feedback_p10']:.3f} "
              f"| {row['ratio']:.2f} ({low:.2f}–{high:.2f}) "
              f"| {row['keyword_p10_fixed']:.3f} | {row['feedback_p10_fixed']:.3f} "
              f"| {row['keyword_recall']:.3f} | {row['feedback_recall']:.3f} "
              f"| {row['suggested']:.1f} ({row['suggested_precision']:.0%}) |")  # fmt: skip
    five = result["after_5"]
    if five:
        verdict = "met" if five["ratio"] >= 1.5 else "NOT met"
        print(f"\nafter 5 clicks: P@10 feedback / keyword-only = {five['ratio']:.2f}x "
              f"(goal >= 1.5x: {verdict}); with perfect suggestions (an upper bound of what "
              f"suggestions can add, keyword matches first as shown): P@10 "
              f"{five['oracle_p10']:.3f}, {five['oracle_ratio']:.2f}x")  # fmt: skip
    beat, stays = result["clicks_to_beat"], result["clicks_to_stay_above"]
    print(f"clicks for keyword + feedback to beat keyword-only on average (P@10): first at "
          f"N = {beat if beat is not None else 'never'}; above at every N from "
          f"N = {stays if stays is not None else 'never'}")  # fmt: skip
    print(f"\n{result['seconds']:.1f} s")


def _no_nan(value: Any) -> Any:
    """`value` with NaN (a mean of nothing) as null: strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _no_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(item) for item in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=60, help="simulated readers per seed")
    parser.add_argument("--seeds", type=int, default=6, help="simulations (readers, days) pooled")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--topics", type=int, default=8)
    parser.add_argument("--days", type=int, default=DAYS, help="days the papers are spread over")
    parser.add_argument("--lsa", type=int, default=40, help="LSA dimensions of the clustering")
    parser.add_argument("--max-clicks", type=int, default=3, help="clicks per day at most")
    parser.add_argument("--exclude-every", type=int, default=5, help="one reader in this many")
    parser.add_argument("--suggestions", type=int, default=5, help="Subscriber.suggestions")
    parser.add_argument("--json", action="store_true", help="one JSON document, no table")
    explore = parser.add_argument_group("constants of digest.learn (monkeypatched, explore only)")
    explore.add_argument("--min-labelled", type=int)
    explore.add_argument("--quantile", type=float, help="SUGGEST_QUANTILE")
    explore.add_argument("--similarity-floor", type=float, help="SIMILARITY_FLOOR")
    explore.add_argument("--background-weight", type=float)
    explore.add_argument("--negative-pull", type=float)
    explore.add_argument("--wide", type=int)
    explore.add_argument("--blend", type=float, metavar="A",
                         help="order keyword matches by model + A x keyword score")  # fmt: skip
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(_no_nan(result), indent=1, allow_nan=False))
    else:
        show(result)


if __name__ == "__main__":
    main()
