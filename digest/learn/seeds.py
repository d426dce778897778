"""Seed papers: the `like:ID` entries of a reader's interests, kept as feedback rows.

A reader who writes `like:2509.24002` says "more like this" about that paper before any
digest. Wherever interests are saved (sign-up, confirmation, the manage page, the
operator's `add` and `import`), `sync_reader_seeds` makes the reader's seed rows those of
the list just saved: new seeds are added, removed ones dropped, and a verdict the reader
gave from a digest's link or the manage page is left as it is. A seed paper not in the
store yet is fetched from arXiv by the fetch job (`digest.jobs.fetch`).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.orm import Session

from digest.errors import InterestSyntaxError
from digest.learn.models import refresh_reader
from digest.match import parse_interests
from digest.store.feedback import sync_seeds

# What every `like:` entry holds, whatever its case and spacing: a list without it has no
# seeds, known without parsing it (a bulk import of 100,000 readers pays nothing).
_LIKE = re.compile(r"like\s*:", re.IGNORECASE)


def may_have_seeds(text: str) -> bool:
    """Whether a list may name seed papers: False means surely not (a cheap check)."""
    return _LIKE.search(text) is not None


def seed_ids(text: str) -> tuple[str, ...]:
    """The versionless arXiv ids a list's `like:` entries name, in order; () for a list
    that does not parse (nothing of it is trusted, as the matcher trusts none of it)."""
    if not may_have_seeds(text):
        return ()
    try:
        return parse_interests(text).seeds
    except InterestSyntaxError:
        return ()


def sync_reader_seeds(
    session: Session, subscriber_id: int, interests_text: str, now: datetime
) -> bool:
    """Make a reader's seed rows those of the interests just saved for them, in the
    caller's transaction, and fit their model again if they changed (a seed counts as a
    "more like this" from the next digest on); returns whether anything changed."""
    changed = sync_seeds(session, subscriber_id, seed_ids(interests_text), now)
    if changed:
        refresh_reader(session, subscriber_id, now)
    return changed
