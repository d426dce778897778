"""Benchmark: the peak memory of `digest fetch --file` and `digest preview` on a hostile listing.

Issue 14: a listing with a 25 MB abstract was stored whole, and `digest preview` then took
1.3 GB. This runs the real command line in a fresh subprocess per step (its peak resident
size from `wait4`), on a fresh data folder, for the real saved HF answer (the baseline,
same run) and for that answer with its first paper made hostile: an abstract of `--mb`
megabytes of short words, a 200,000-word title, 3,000 authors, a 100,000-word
organisation. `--tree` runs another checkout (say the code before the fix, unpacked with
`git archive`), so both are measured in one run on one machine:

    python bench/hostile_bench.py [--mb 7] [--tree /tmp/old --tree .]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HF_API = ROOT / "tests" / "data" / "sources" / "hf_api_daily_papers_2026-06-12.json"


def words(count: int, word: str = "diffusion") -> str:
    """`count` copies of a short word: the shape that costs most once split into words."""
    return " ".join([word] * count)


def hostile_listing(megabytes: float) -> bytes:
    """The real HF answer, its first paper grown to about `megabytes` of abstract."""
    entries = json.loads(HF_API.read_bytes())
    paper = entries[0]["paper"]
    paper["summary"] = words(int(megabytes * 1024 * 1024 / 10))
    paper["title"] = words(200_000, "Title")
    paper["authors"] = [{"name": f"Author {n}"} for n in range(3_000)]
    entries[0]["organization"] = {"fullname": words(100_000, "Org")}
    return json.dumps(entries).encode()


def peak_mb(tree: Path, data: Path, *arguments: str) -> tuple[float, str]:
    """Run `digest ARGUMENTS` from `tree` on data folder `data`: peak RSS in MB, last line."""
    environ = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "DIGEST_SERVICE_DATA_DIR": str(data),
        "DIGEST_CONFIG": "",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", *arguments],
        cwd=tree,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return usage.ru_maxrss / 1024, last  # ru_maxrss is in KB on Linux


def measure(tree: Path, listing: Path, work: Path) -> list[tuple[str, float, str]]:
    """Peak RSS of fetch --file and of preview, on a fresh data folder."""
    data = work / "data"
    out = work / "preview"
    fetch = peak_mb(tree, data, "fetch", "--file", str(listing))
    preview = peak_mb(tree, data, "preview", "--interests", "diffusion", "--out", str(out))
    return [("fetch --file", *fetch), ("preview", *preview)]


def main() -> None:
    """Measure each tree on the real and the hostile listing; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=7.0, help="megabytes of hostile abstract")
    parser.add_argument("--tree", action="append", type=Path, help="checkouts to measure")
    options = parser.parse_args()
    trees = options.tree or [ROOT]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        hostile = work / "hostile.json"
        hostile.write_bytes(hostile_listing(options.mb))
        size = hostile.stat().st_size / 1024 / 1024
        print(f"hostile listing: {size:.1f} MB; baseline: the real answer, 0.2 MB")
        print(f"{'tree':28} {'step':14} {'real MB':>8} {'hostile MB':>11}  hostile says")
        for number, tree in enumerate(trees):
            real = measure(tree.resolve(), HF_API, work / f"real{number}")
            bad = measure(tree.resolve(), hostile, work / f"hostile{number}")
            for (step, real_mb, _), (_, bad_mb, said) in zip(real, bad, strict=True):
                print(f"{str(tree)[-28:]:28} {step:14} {real_mb:8.0f} {bad_mb:11.0f}  {said[:60]}")


if __name__ == "__main__":
    main()
