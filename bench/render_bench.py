"""How many complete digest messages a second one core renders, ours against the naive way.

    python bench/render_bench.py [--digests 3000] [--naive-digests 300] [--rounds 3] [--dkim]

Builds realistic digests from the real papers of papers.jsonl: subscribers with 3 to 6
interests drawn from a vocabulary of topics, each digest the 20 best matching papers
(made like the matcher makes them: a Span for every occurrence). Then, on one core:

- naive: `reference_digest` (tests/reference/render.py), i.e. Jinja renders every card and
  the page, css-inline inlines the whole page, `EmailMessage` (default policy) builds the message;
- ours, same digests: `render_digest` on a fresh renderer, so every card is new at first;
- ours, a run: `render_digest` on a fresh renderer over all the digests (a daily run);
- ours, warm: the same digests again on that renderer (every card cached).

Each figure is the best of --rounds rounds, reported with its ratio to naive. Time is
the CPU time of this process (pinned to one core), which other work on a shared machine
disturbs less than wall time; the load average is printed too: compare ratios, not
absolutes. The inputs are built up front and then frozen out of the garbage collector's
sight (gc.freeze): a real run gets each selection from the matcher one at a time and
never holds thousands of them, whose scanning would otherwise be timed too.
"""

from __future__ import annotations

import argparse
import base64
import functools
import gc
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from render_samples import VOCABULARY, load_papers, select, subscriber  # noqa: E402

from digest.config import load_settings  # noqa: E402
from digest.match import Selection  # noqa: E402
from digest.render import DigestRenderer  # noqa: E402
from digest.subscriber import Subscriber  # noqa: E402
from tests.reference.render import reference_digest  # noqa: E402

DAY = date(2026, 6, 12)
NOW = datetime(2026, 6, 12, 6, 0, tzinfo=UTC)
Digest = tuple[Subscriber, Selection]


def realistic_digests(count: int, seed: int = 1) -> list[Digest]:
    """`count` subscribers with 3-6 interests each, and their 20-paper selections."""
    papers = load_papers()
    rng = random.Random(seed)
    digests: list[Digest] = []
    while len(digests) < count:
        interests = rng.sample(VOCABULARY, rng.randint(3, 6))
        selection = select(papers, interests, max_papers=20)
        if len(selection.matches) == 20:
            number = len(digests) + 1
            reader = subscriber(", ".join(interests), number, f"reader{number}@example.org")
            digests.append((reader, selection))
    return digests


def settings_for(folder: Path, dkim: bool) -> object:
    sections: dict[str, dict[str, object]] = {
        "service": {"data_dir": str(folder), "base_url": "https://digest.example.org"},
        "mail": {
            "from_address": "digest@example.org",
            "postal_address": "Paper Digest, 12 Rue des Écoles, 75005 Paris",
            "unsubscribe_mailto": "leave@example.org",
        },
    }
    if dkim:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file = folder / "dkim.pem"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        sections["dkim"] = {"selector": "mail", "key_file": str(key_file), "domain": "example.org"}
    return load_settings(environ={}, overrides=sections)


def rate(render: Callable[[Subscriber, Selection, date], object], digests: list[Digest]) -> float:
    """Digests per CPU second for rendering all of `digests` once."""
    started = time.process_time()
    for reader, selection in digests:
        render(reader, selection, DAY, now=NOW)  # type: ignore[call-arg]
    return len(digests) / (time.process_time() - started)


def reference_of(renderer: DigestRenderer) -> Callable[..., object]:
    """The naive way, with the same renderer's settings and templates."""
    return functools.partial(reference_digest, renderer)


def best_of(rounds: int, measure: Callable[[], float]) -> float:
    return max(measure() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digests", type=int, default=3000, help="digests in a run")
    parser.add_argument("--naive-digests", type=int, default=300, help="digests for naive")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dkim", action="store_true", help="also sign with a 2048-bit key")
    options = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    digests = realistic_digests(max(options.digests, options.naive_digests))
    few = digests[: options.naive_digests]
    gc.collect()
    gc.freeze()
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory() as folder:
        settings = settings_for(Path(folder), options.dkim)

        def fresh() -> DigestRenderer:
            return DigestRenderer(settings, secret)  # type: ignore[arg-type]

        naive = best_of(options.rounds, lambda: rate(reference_of(fresh()), few))
        same = best_of(options.rounds, lambda: rate(fresh().render_digest, few))
        run = best_of(options.rounds, lambda: rate(fresh().render_digest, digests))
        warm_renderer = fresh()
        rate(warm_renderer.render_digest, digests)
        warm = best_of(options.rounds, lambda: rate(warm_renderer.render_digest, digests))
        size = sum(len(fresh().render_digest(r, s, DAY, now=NOW).data) for r, s in few[:50]) / 50

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"render benchmark: 20-paper digests, one core, best of {options.rounds} rounds")
    dkim = "on" if options.dkim else "off"
    print(f"load average {load:.2f} on {os.cpu_count()} cores; DKIM {dkim}")
    print(f"average message size {size / 1000:.1f} kB")
    rows = [
        (f"naive ({len(few)} digests)", naive),
        (f"ours, same {len(few)} digests, cold", same),
        (f"ours, a run of {len(digests)} digests", run),
        (f"ours, warm ({len(digests)} digests)", warm),
    ]
    for label, value in rows:
        print(f"  {label:<34} {value:8.0f} digests/s   x{value / naive:5.1f}")


if __name__ == "__main__":
    main()
