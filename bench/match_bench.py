"""Benchmark `match`: the index against the naive regex baseline, 10k to 1M subscribers.

    python bench/match_bench.py                      # 10k, 100k and 1M subscribers
    python bench/match_bench.py --sizes 10000        # small and fast
    python bench/match_bench.py --baseline-sample 0 --sizes 10000  # baseline on all

The data is made from `../shared/data/papers.jsonl` (188 real papers; tests/data has a
copy). A day of 1,000 papers is synthesised from them: each synthetic paper keeps a real
paper's first sentence and mixes the rest of its abstract from that paper's and other
papers' sentences, with a real title or two real title halves joined at their colon,
real author and organisation names (from the saved Hugging Face listing), real upvote
counts, and a `first_seen_at` within the last three days (those with upvotes are listed on
Hugging Face then too, so trending has them). Subscribers get 1 to 12
entries drawn Zipf-like (weight 1/rank) from the papers' own vocabulary (words, two- and
three-word phrases, acronyms; ranked by frequency with phrases counted thrice, stop
words and generic academic words such as "performance" left out), in every form:
plain, "quoted", prefix*, title:, AND, -exclusion, author:, org:; a third of them
(`--trending-share`) also have the trending rule (`trending`, `trending:5`,
`trending:15 upvotes>=20`), first or last. Most subscribers' watermark is yesterday's
run, some older, a few None.

Each size runs in a fresh subprocess, so that its peak memory (`ru_maxrss`) is its own.
Timed: "ours" = building the index + `Matcher.select_many` over every subscriber, on one
core, as CPU seconds (`time.process_time`) and wall; "explained" = the same, then every
shown paper's `Match` with its hits and spans read as the renderer reads them (the daily
job renders every selection); "two cores" = the index built once, then the subscribers
split in two halves matched in two forked processes at once, wall time from the start
of indexing until both are done (before the one-core run, so both start cold). Parsing
the interest lists is timed apart (CPU), and so is generating them. "naive" =
`naive_match_many` (a compiled regex per entry, per paper, per subscriber) on the first
`--baseline-sample` subscribers (all of them if 0), extrapolated linearly to the whole
size when it is a sample (its cost per subscriber does not depend on how many there
are). The baseline knows no trending: every sampled subscriber without it is checked to
get the same `Selection`, and it runs on the keywords of those with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.match import Interests, Matcher, Selection, parse_interests  # noqa: E402
from digest.paper import Paper  # noqa: E402
from tests.reference.naive import naive_match_many  # noqa: E402

SHARED = ROOT.parent / "shared"
PAPERS_FILE = SHARED / "data" / "papers.jsonl"
LISTING_FILE = SHARED / "fixtures" / "hf_api_daily_papers_2026-06-12.json"
DAY = datetime(2026, 6, 12, 20, 0, tzinfo=UTC)


def _words(text: str) -> set[str]:
    return set(text.split())


STOPWORDS = _words(
    """a an the of and or in on for to with by from as at is are be been was were this that
    these those we our us it its their they them which who whom whose what when where while
    than then into onto over under via can could may might will would shall should do does
    did not no yes such also both each more most less least many much very only other
    same so if but about across after before between through during without within among
    however thus therefore here there has have had having using used use based show shows
    shown new novel propose proposed approach method methods paper results result work
    first two three one all any some how why up out however furthermore moreover"""
)
# Words every abstract uses and nobody subscribes to (nor to web addresses).
FILLER = _words(
    """performance theoretical tasks task framework analysis existing experiments
    insights further demonstrate address different provide efficient introduce key study
    problem problems results findings significant significantly effective approaches
    https github com www http available code project page recent recently state-of-the-art
    achieve achieves achieving improve improves improved improvement improvements previous
    various several including given well best better high low strong work works across
    demonstrates extensive experimental evaluation evaluate evaluated outperforms prior"""
)


# --- the day's papers ------------------------------------------------------------------


def load_real() -> list[dict]:
    source = PAPERS_FILE if PAPERS_FILE.exists() else ROOT / "tests" / "data" / "papers.jsonl"
    return [json.loads(line) for line in source.read_text("utf-8").splitlines()]


def load_names() -> tuple[list[str], list[str]]:
    """Real author and organisation names (from the saved HF listing, if present)."""
    if not LISTING_FILE.exists():
        return ["Ana Lopez", "Wei Chen", "Colin Raffel"], ["MIT", "MiniMax"]
    listing = json.loads(LISTING_FILE.read_text("utf-8"))
    authors = sorted({a["name"] for e in listing for a in e["paper"]["authors"]})
    orgs = sorted({(e.get("organization") or {}).get("fullname") or "" for e in listing} - {""})
    return authors, orgs


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def synthesise_papers(real: list[dict], count: int, rng: random.Random) -> list[Paper]:
    """`count` realistic papers recombined from real titles, sentences and names."""
    authors, orgs = load_names()
    sentences = [_SENTENCE.split(r["abstract"]) for r in real]
    upvotes = [r.get("upvotes") or 0 for r in real]
    papers = []
    for number in range(count):
        base = rng.randrange(len(real))
        title = real[base]["title"]
        other = real[rng.randrange(len(real))]["title"]
        if ":" in title and ":" in other and rng.random() < 0.5:
            title = title.split(":", 1)[0] + ":" + other.split(":", 1)[1]
        own = sentences[base]
        body = [own[0]]
        for _ in range(rng.randint(4, 10)):
            pool = own if rng.random() < 0.5 else sentences[rng.randrange(len(real))]
            body.append(rng.choice(pool))
        age = rng.choices([0, 1, 2], weights=[85, 10, 5])[0]
        votes = rng.choice(upvotes)
        seen = DAY - timedelta(days=age, minutes=rng.randrange(24 * 60))
        papers.append(
            Paper(
                id=f"2606.{number:05d}",
                title=title,
                abstract=" ".join(body),
                authors=tuple(rng.sample(authors, rng.randint(1, min(12, len(authors))))),
                organization=rng.choice(orgs) if rng.random() < 0.5 else None,
                upvotes=votes,
                first_seen_at=seen,
                sources=("hf",) if votes else ("arxiv",),
                hf_seen_at=seen if votes else None,
            )
        )
    return papers


# --- the subscribers -------------------------------------------------------------------


def vocabulary(real: list[dict]) -> list[str]:
    """Terms people might follow, most frequent first: words, phrases, acronyms."""
    counts: dict[str, int] = {}
    for record in real:
        chunks = re.split(r"[^\w\s-]", record["title"] + ". " + record["abstract"])
        for text in chunks:  # phrases do not cross punctuation
            words = re.findall(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*", text)
            for size in (1, 2, 3):
                for i in range(len(words) - size + 1):
                    gram = words[i : i + size]
                    if any(w.lower() in STOPWORDS or len(w) < 2 for w in gram):
                        continue
                    if gram[0].lower() in FILLER or gram[-1].lower() in FILLER:
                        continue
                    if size == 1 and gram[0].lower() in ("large", "deep", "model", "models"):
                        continue  # only ever part of a topic
                    term = " ".join(w if w.isupper() else w.lower() for w in gram)
                    counts[term] = counts.get(term, 0) + 1
    terms = [t for t, c in counts.items() if c >= (2 if " " not in t else 3)]
    # People follow topics, which are mostly phrases: a phrase counts as three words.
    return sorted(terms, key=lambda t: (-counts[t] * (3 if " " in t else 1), t))


class InterestMaker:
    """Draws interest lists: Zipf-like terms in the syntax's forms."""

    FORMS = ["plain"] * 55 + ["quoted"] * 8 + ["prefix"] * 8 + ["title"] * 8
    FORMS += ["and"] * 6 + ["exclude"] * 8 + ["author"] * 4 + ["org"] * 3

    def __init__(self, terms: list[str], rng: random.Random) -> None:
        self.rng = rng
        self.terms = terms
        self.weights = [1 / (rank + 1) ** 1.0 for rank in range(len(terms))]
        self.cumulative = list(_accumulate(self.weights))
        self.words = [t for t in terms if " " not in t and t.isalpha() and len(t) >= 5]
        self.authors, self.orgs = load_names()

    def term(self) -> str:
        return self.rng.choices(self.terms, cum_weights=self.cumulative)[0]

    def entry(self) -> str:
        form = self.rng.choice(self.FORMS)
        if form == "quoted":
            return f'"{self.term()}"'
        if form == "prefix":
            word = self.rng.choice(self.words[:300])
            return word[: self.rng.randint(4, len(word))].lower() + "*"
        if form == "title":
            return f"title:{self.term()}"
        if form == "and":
            return f"{self.term()} AND {self.term()}"
        if form == "exclude":
            return "-" + self.rng.choice(["survey", "benchmark", "dataset", self.term()])
        if form == "author":
            return "author:" + self.rng.choice(self.authors[:60])
        if form == "org":
            return "org:" + self.rng.choice(self.orgs)
        return self.term()

    def interests(self) -> str:
        count = min(12, 1 + int(self.rng.expovariate(1 / 3)))
        entries = [self.entry() for _ in range(count)]
        if all(e.startswith("-") for e in entries):
            entries.append(self.term())
        return "\n".join(entries)

    WATERMARKS = (DAY - timedelta(days=1), DAY - timedelta(days=2), None, DAY - timedelta(days=3))

    def watermark(self) -> datetime | None:
        """Yesterday's run for most; a few missed days; 2% never sent (None)."""
        return self.rng.choices(self.WATERMARKS, cum_weights=(90, 97, 99, 100))[0]


TRENDING_RULES = ("trending", "trending", "trending:5", "trending:15 upvotes>=20")


def with_trending(texts: list[str], share: float, seed: int) -> list[str]:
    """A `share` of the lists with a trending rule first or last (its own random stream,
    so the keyword entries stay those drawn without it)."""
    rng = random.Random(seed + 1)
    lists = []
    for text in texts:
        if rng.random() < share:
            rule = rng.choice(TRENDING_RULES)
            text = f"{rule}\n{text}" if rng.random() < 0.5 else f"{text}\n{rule}"
        lists.append(text)
    return lists


def _accumulate(values: list[float]):  # type: ignore[no-untyped-def]
    total = 0.0
    for value in values:
        total += value
        yield total


# --- one size, in its own process ------------------------------------------------------


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def explain(selection: Selection) -> int:
    """Read every shown paper's explanation as the renderer does; the number of spans."""
    spans = 0
    for _, matches in selection.sections:
        for match in matches:
            for hit in match.hits:
                spans += len(hit.spans)
    return spans


Subscribers = list[tuple[int, Interests, datetime | None]]


def match_all(matcher: Matcher, subscribers: Subscribers, explained: bool) -> int:
    """Match every subscriber (and read their explanations if `explained`): papers shown."""
    shown = 0
    for _, selection in matcher.select_many(subscribers, 20):
        shown += selection.papers
        if explained:
            explain(selection)
    return shown


def two_cores(papers: list[Paper], subscribers: Subscribers) -> dict:
    """Index once, then match two halves of the subscribers in two forked processes."""
    started = time.perf_counter()
    matcher = Matcher(papers, trending_until=DAY)
    half = len(subscribers) // 2
    children = []
    for part in (subscribers[:half], subscribers[half:]):
        reading, writing = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: match its half, say how long it took, and leave
            os.close(reading)
            cpu = time.process_time()
            shown = match_all(matcher, part, explained=False)
            report = {"cpu_s": time.process_time() - cpu, "shown": shown}
            os.write(writing, json.dumps(report).encode())
            os._exit(0)
        os.close(writing)
        children.append((pid, reading))
    reports = []
    for pid, reading in children:
        with os.fdopen(reading, "rb") as pipe:
            reports.append(json.loads(pipe.read()))
        os.waitpid(pid, 0)
    return {
        "two_core_wall_s": time.perf_counter() - started,
        "two_core_cpu_s": [r["cpu_s"] for r in reports],
        "two_core_shown": sum(r["shown"] for r in reports),
        "two_core_child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def timed(work, *args):  # type: ignore[no-untyped-def]
    """(result, wall s, CPU s) of `work(*args)`."""
    started, cpu = time.perf_counter(), time.process_time()
    result = work(*args)
    return result, time.perf_counter() - started, time.process_time() - cpu


def parse_all(texts: list[str]) -> list[Interests]:
    return [parse_interests(text) for text in texts]


def run_size(size: int, papers_count: int, sample: int, seed: int, share: float) -> dict:
    rng = random.Random(seed)
    real = load_real()
    papers = synthesise_papers(real, papers_count, rng)
    maker = InterestMaker(vocabulary(real), rng)
    started = time.perf_counter()
    texts = [maker.interests() for _ in range(size)]
    marks = [maker.watermark() for _ in range(size)]
    texts = with_trending(texts, share, seed)
    generated = time.perf_counter() - started
    lists, _, parsed_cpu = timed(parse_all, texts)
    del texts
    rss_input = max_rss_mb()
    subscribers = list(zip(range(size), lists, marks, strict=True))
    load_before = os.getloadavg()

    two = two_cores(papers, subscribers)
    matcher, indexed, indexed_cpu = timed(Matcher, papers, DAY)
    shown, matched, matched_cpu = timed(match_all, matcher, subscribers, False)
    rss_ours = max_rss_mb()
    del matcher
    again = Matcher(papers, trending_until=DAY)
    _, explained, explained_cpu = timed(match_all, again, subscribers, True)
    del again
    load_after = os.getloadavg()

    keep = sample if sample else size
    sampled = subscribers[:keep]
    ours = {key: s for key, s in Matcher(papers, trending_until=DAY).select_many(sampled, 20)}
    keywords = [(k, dataclasses.replace(i, trending=None), w) for k, i, w in sampled]
    started, cpu = time.perf_counter(), time.process_time()
    naive = dict(naive_match_many(papers, keywords, 20))
    naive_time, naive_cpu = time.perf_counter() - started, time.process_time() - cpu
    checked = [key for key, interests, _ in sampled if interests.trending is None]
    disagree = sum(1 for key in checked if ours[key] != naive[key])
    return {
        "size": size,
        "papers": papers_count,
        "trending_share": share,
        "generate_s": generated,
        "parse_cpu_s": parsed_cpu,
        "index_s": indexed,
        "match_s": matched,
        "ours_s": indexed + matched,
        "ours_cpu_s": indexed_cpu + matched_cpu,
        "explained_cpu_s": indexed_cpu + explained_cpu,
        "explained_s": indexed + explained,
        "shown_per_subscriber": shown / size,
        "rss_after_input_mb": rss_input,
        "rss_peak_ours_mb": rss_ours,
        **two,
        "naive_subscribers": keep,
        "naive_s": naive_time,
        "naive_full_s": naive_time * size / keep,
        "naive_full_cpu_s": naive_cpu * size / keep,
        "naive_extrapolated": keep < size,
        "checked": len(checked),
        "disagreements": disagree,
        "load": [load_before, load_after],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=300,
        help="subscribers the naive baseline runs for (0: all); the rest is extrapolated",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--trending-share", type=float, default=1 / 3, help="share of lists with trending"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        (size,) = args.sizes
        result = run_size(size, args.papers, args.baseline_sample, args.seed, args.trending_share)
        print(json.dumps(result))
        return
    print(f"load before: {os.getloadavg()}", flush=True)
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--child", "--sizes", str(size)]
        command += ["--papers", str(args.papers), "--seed", str(args.seed)]
        command += ["--baseline-sample", str(args.baseline_sample)]
        command += ["--trending-share", str(args.trending_share)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(
        "| subscribers | ours, 1 core: CPU s (wall) | µs / subscriber | + explanations: CPU s "
        "| 2 cores: wall s | naive, CPU s | speed-up (CPU) | peak RSS MB | parse lists CPU s "
        "| same results | load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for row in rows:
        naive = f"{row['naive_full_cpu_s']:,.0f}"
        if row["naive_extrapolated"]:
            naive += f", from {row['naive_subscribers']:,}"
        load = "–".join(f"{values[0]:.1f}" for values in row["load"])
        print(
            f"| {row['size']:,} | {row['ours_cpu_s']:.1f} ({row['ours_s']:.1f}) "
            f"| {row['ours_cpu_s'] / row['size'] * 1e6:.0f} | {row['explained_cpu_s']:.1f} "
            f"| {row['two_core_wall_s']:.1f} | {naive} "
            f"| {row['naive_full_cpu_s'] / row['ours_cpu_s']:,.0f}x "
            f"| {row['rss_peak_ours_mb']:,.0f} | {row['parse_cpu_s']:.1f} "
            f"| {row['checked'] - row['disagreements']:,}/{row['checked']:,} | {load} |"
        )
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
