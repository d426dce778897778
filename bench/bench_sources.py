"""Benchmark: what the source parsers cost over the raw parse of the same bytes.

For each saved page, the baseline is the bare format parser on the same bytes in the same
run (`json.loads`, BeautifulSoup with lxml, `lxml.etree.fromstring`); the figure reported
is the median over rounds of parser time / baseline time, the two alternating round by
round so a busy machine weighs on both alike. A scaled HF API answer
(the 30 real entries repeated with fresh ids to 3,000) checks that the cost per entry stays
flat. Run from the repository root:

    python bench/bench_sources.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bs4 import BeautifulSoup
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digest.sources import arxiv, hf

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "sources"


def timed(function: Callable[[], object], number: int) -> float:
    """Seconds per call over `number` calls."""
    start = time.perf_counter()
    for _ in range(number):
        function()
    return (time.perf_counter() - start) / number


def compare(
    baseline: Callable[[], object], ours: Callable[[], object], repeat: int, number: int
) -> tuple[float, float, float]:
    """Median baseline time, median parser time, and the median of per-round ratios.

    Baseline and parser alternate round by round, so load from other work on the
    machine falls on both alike.
    """
    base_times, our_times, ratios = [], [], []
    for _ in range(repeat):
        base = timed(baseline, number)
        mine = timed(ours, number)
        base_times.append(base)
        our_times.append(mine)
        ratios.append(mine / base)
    return statistics.median(base_times), statistics.median(our_times), statistics.median(ratios)


def scaled_api(times: int) -> bytes:
    """The real API answer, its entries repeated with distinct ids."""
    entries = json.loads((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes())
    scaled = []
    for copy_number in range(times):
        for index, entry in enumerate(entries):
            clone = copy.deepcopy(entry)
            clone["paper"]["id"] = f"26{copy_number % 100:02d}.{10000 + copy_number * 100 + index}"
            scaled.append(clone)
    return json.dumps(scaled).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()

    def soup(data: bytes) -> object:
        return BeautifulSoup(data.decode(), "lxml")

    cases: list[tuple[str, bytes, Callable[[bytes], object], Callable[[bytes], object], int]] = [
        (
            "hf API, 30 entries",
            (DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes(),
            lambda d: hf.parse_api(d, "bench"),
            json.loads,
            50,
        ),
        (
            "hf API, 3,000 entries",
            scaled_api(100),
            lambda d: hf.parse_api(d, "bench"),
            json.loads,
            2,
        ),
        (
            "hf day page",
            (DATA / "hf_papers_page_2024-08-01.html").read_bytes(),
            lambda d: hf.parse_page(d, "bench"),
            soup,
            10,
        ),
        (
            "hf paper page",
            (DATA / "hf_paper_detail_2509.24002_prettified.html").read_bytes(),
            lambda d: hf.parse_page(d, "bench"),
            soup,
            10,
        ),
        (
            "arXiv RSS",
            (DATA / "arxiv_rss_2026-09-24_excerpt.xml").read_bytes(),
            lambda d: arxiv.parse_feed(d, "bench"),
            etree.fromstring,
            500,
        ),
        (
            "arXiv API",
            (DATA / "arxiv_api_query_2026-06-14.xml").read_bytes(),
            lambda d: arxiv.parse_feed(d, "bench"),
            etree.fromstring,
            500,
        ),
    ]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'case':<24}{'size':>10}{'baseline ms':>13}{'parser ms':>11}{'ratio':>8}")
    for name, data, parse, baseline, number in cases:
        base, ours, ratio = compare(
            lambda: baseline(data),  # noqa: B023
            lambda: parse(data),  # noqa: B023
            options.repeat,
            number,
        )
        print(f"{name:<24}{len(data):>10,}{base * 1000:>13.2f}{ours * 1000:>11.2f}{ratio:>8.2f}")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
