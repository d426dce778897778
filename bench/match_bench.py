"""Benchmark `match`: the index against the naive regex baseline, 10k to 1M subscribers.

    python bench/match_bench.py                      # 10k, 100k and 1M subscribers
    python bench/match_bench.py --sizes 10000        # small and fast
    python bench/match_bench.py --baseline-sample 0 --sizes 10000  # baseline on all

The data is made from `../shared/data/papers.jsonl` (188 real papers; tests/data has a
copy). A day of 1,000 papers is synthesised from them: each synthetic paper keeps a real
paper's first sentence and mixes the rest of its abstract from that paper's and other
papers' sentences, with a real title or two real title halves joined at their colon,
real author and organisation names (from the saved Hugging Face listing), real upvote
counts, and a `first_seen_at` within the last three days. Subscribers get 1 to 12
entries drawn Zipf-like (weight 1/rank) from the papers' own vocabulary (words, two- and
three-word phrases, acronyms; ranked by frequency with phrases counted thrice, stop
words and generic academic words such as "performance" left out), in every form:
plain, "quoted", prefix*, title:, AND, -exclusion, author:, org:. Most subscribers'
watermark is yesterday's run, some older, a few None.

Each size runs in a fresh subprocess, so that its peak memory (`ru_maxrss`) is its own.
Timed: "ours" = building the index + `Matcher.select_many` over every subscriber (parsing
the interest lists is timed apart, and so is generating them); "naive" =
`naive_match_many` (a compiled regex per entry, per paper, per subscriber) on the first
`--baseline-sample` subscribers (all of them if 0), extrapolated linearly to the whole
size when it is a sample (its cost per subscriber does not depend on how many there
are). Every subscriber the baseline ran for is checked to get the same `Selection`.
"""

from __future__ import annotations

import argparse
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

from digest.match import Matcher, parse_interests  # noqa: E402
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
        papers.append(
            Paper(
                id=f"2606.{number:05d}",
                title=title,
                abstract=" ".join(body),
                authors=tuple(rng.sample(authors, rng.randint(1, min(12, len(authors))))),
                organization=rng.choice(orgs) if rng.random() < 0.5 else None,
                upvotes=rng.choice(upvotes),
                first_seen_at=DAY - timedelta(days=age, minutes=rng.randrange(24 * 60)),
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


def _accumulate(values: list[float]):  # type: ignore[no-untyped-def]
    total = 0.0
    for value in values:
        total += value
        yield total


# --- one size, in its own process ------------------------------------------------------


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_size(size: int, papers_count: int, sample: int, seed: int) -> dict:
    rng = random.Random(seed)
    real = load_real()
    papers = synthesise_papers(real, papers_count, rng)
    maker = InterestMaker(vocabulary(real), rng)
    started = time.perf_counter()
    texts = [maker.interests() for _ in range(size)]
    marks = [maker.watermark() for _ in range(size)]
    generated = time.perf_counter() - started
    started = time.perf_counter()
    lists = [parse_interests(text) for text in texts]
    parsed = time.perf_counter() - started
    del texts
    rss_input = max_rss_mb()

    started, cpu = time.perf_counter(), time.process_time()
    matcher = Matcher(papers)
    indexed, indexed_cpu = time.perf_counter() - started, time.process_time() - cpu
    ours: list = []
    keep = sample if sample else size
    chosen = 0
    started, cpu = time.perf_counter(), time.process_time()
    for key, selection in matcher.select_many(zip(range(size), lists, marks, strict=True), 20):
        chosen += len(selection.matches)
        if key < keep:
            ours.append(selection)
    matched, matched_cpu = time.perf_counter() - started, time.process_time() - cpu
    rss_ours = max_rss_mb()

    subscribers = list(zip(range(keep), lists[:keep], marks[:keep], strict=True))
    started, cpu = time.perf_counter(), time.process_time()
    naive = [selection for _, selection in naive_match_many(papers, subscribers, 20)]
    naive_time, naive_cpu = time.perf_counter() - started, time.process_time() - cpu
    disagree = sum(1 for a, b in zip(ours, naive, strict=True) if a != b)
    return {
        "size": size,
        "papers": papers_count,
        "distinct_entries": len(matcher._entries),
        "generate_s": generated,
        "parse_s": parsed,
        "index_s": indexed,
        "match_s": matched,
        "ours_s": indexed + matched,
        "ours_cpu_s": indexed_cpu + matched_cpu,
        "chosen_per_subscriber": chosen / size,
        "rss_after_input_mb": rss_input,
        "rss_peak_ours_mb": rss_ours,
        "naive_subscribers": keep,
        "naive_s": naive_time,
        "naive_full_s": naive_time * size / keep,
        "naive_full_cpu_s": naive_cpu * size / keep,
        "naive_extrapolated": keep < size,
        "disagreements": disagree,
        "load": os.getloadavg(),
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
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        (size,) = args.sizes
        print(json.dumps(run_size(size, args.papers, args.baseline_sample, args.seed)))
        return
    print(f"load before: {os.getloadavg()}", flush=True)
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--child", "--sizes", str(size)]
        command += ["--papers", str(args.papers), "--seed", str(args.seed)]
        command += ["--baseline-sample", str(args.baseline_sample)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(
        "| subscribers | ours: index + match, wall (CPU) s | µs / subscriber (CPU) "
        "| naive, wall (CPU) s | speed-up (CPU) | peak RSS MB | parse lists s | same results |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        naive = f"{row['naive_full_s']:,.0f} ({row['naive_full_cpu_s']:,.0f})"
        if row["naive_extrapolated"]:
            naive += f", from {row['naive_subscribers']:,}"
        print(
            f"| {row['size']:,} | {row['ours_s']:.1f} ({row['ours_cpu_s']:.1f}) "
            f"| {row['ours_cpu_s'] / row['size'] * 1e6:.0f} | {naive} "
            f"| {row['naive_full_s'] / row['ours_s']:,.0f}x "
            f"({row['naive_full_cpu_s'] / row['ours_cpu_s']:,.0f}x) "
            f"| {row['rss_peak_ours_mb']:,.0f} | {row['parse_s']:.1f} "
            f"| {row['naive_subscribers'] - row['disagreements']:,}/{row['naive_subscribers']:,} |"
        )
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
