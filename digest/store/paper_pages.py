"""What the /papers pages read besides the day queries of `digest.store.papers`: cheap
fingerprints of the data a page shows (the web app caches each page under them), and
the days and top papers of the trending feed.

A fingerprint is a tuple that changes whenever what it covers changes; every query here
is answered from indexes, or from the rows of the days asked about, never from the
whole table, because the web app asks on every request.

- `arrivals`: the newest first sighting and the newest first Hugging Face sighting, each
  with how many papers share it. A new paper, or a paper listed on Hugging Face for the
  first time, is the only way a day gains papers (nothing deletes papers), and it
  raises a time or, when one fetch run saves several listings at the same `now` (the
  scheduler does), a count. So it covers which days exist: latest and neighbour days.
- `day_fingerprint` and `hf_fingerprint`: over the rows of the days a page shows, their
  number, last update, upvotes and comments, and the lengths of the fields a later
  sighting may fill or change. A save that changes a shown row sets its `updated_at`;
  the sums and lengths also tell apart two saves stamped with the same `now`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Select, String, and_, bindparam, cast, func, or_, select
from sqlalchemy.orm import Session

from digest.paper import Paper
from digest.store.models import PaperRow
from digest.store.papers import paper_from_row, trending_order

Fingerprint = tuple[object, ...]

# What a later sighting may fill in or change on a stored paper, and pages show.
_CHANGING_TEXT = (
    PaperRow.abstract,
    PaperRow.organization,
    PaperRow.url_abs,
    PaperRow.url_pdf,
    PaperRow.url_hf,
    PaperRow.url_code,
    PaperRow.url_project,
)


def _arrivals_query() -> Select[Any]:
    newest_seen = select(func.max(PaperRow.first_seen_at)).scalar_subquery()
    newest_on_hf = select(func.max(PaperRow.hf_seen_at)).scalar_subquery()
    seen_then = select(func.count()).where(PaperRow.first_seen_at == newest_seen).scalar_subquery()
    on_hf_then = select(func.count()).where(PaperRow.hf_seen_at == newest_on_hf).scalar_subquery()
    return select(newest_seen, seen_then, newest_on_hf, on_hf_then)


def _fingerprint_query() -> Select[Any]:
    """The fingerprint of the rows a WHERE clause added to it picks."""
    lengths = [func.coalesce(func.sum(func.length(column)), 0) for column in _CHANGING_TEXT]
    return select(
        func.count(),
        func.max(PaperRow.updated_at),
        func.coalesce(func.sum(PaperRow.upvotes), 0),
        func.coalesce(func.sum(PaperRow.comments), 0),
        func.coalesce(func.sum(func.length(cast(PaperRow.authors, String))), 0),
        *lengths,
    )


# Built once: these run on every request, and building them costs more than running them.
_ARRIVALS = _arrivals_query()
_DAY_FINGERPRINT = _fingerprint_query().where(
    # The papers a day's page shows: HF-listed that day, or arXiv-only listed that day.
    or_(
        PaperRow.hf_listed == bindparam("day"),
        and_(PaperRow.hf_listed.is_(None), PaperRow.listed == bindparam("day")),
    )
)
_HF_FINGERPRINT = _fingerprint_query().where(
    PaperRow.hf_listed.in_(bindparam("days", expanding=True))
)


def arrivals(session: Session) -> Fingerprint:
    """When the newest paper and the newest Hugging Face listing arrived, and how many
    papers arrived at each of those instants (see the module's docstring)."""
    return tuple(session.execute(_ARRIVALS).one())


def day_fingerprint(session: Session, day: date) -> Fingerprint:
    """What the papers of one day's page hold, in brief (see the module's docstring)."""
    return tuple(session.execute(_DAY_FINGERPRINT, {"day": day}).one())


def hf_fingerprint(session: Session, days: Sequence[date]) -> Fingerprint:
    """What the Hugging Face papers of `days` hold, in brief."""
    return tuple(session.execute(_HF_FINGERPRINT, {"days": list(days)}).one())


def hf_days(session: Session, until: date, count: int) -> list[date]:
    """The `count` most recent days, on or before `until`, that Hugging Face listed
    papers on, newest first."""
    query = (
        select(PaperRow.hf_listed)
        .where(PaperRow.hf_listed <= until)
        .group_by(PaperRow.hf_listed)
        .order_by(PaperRow.hf_listed.desc())
        .limit(count)
    )
    return list(session.scalars(query))


def top_hf_papers(session: Session, day: date, count: int) -> list[Paper]:
    """The `count` papers Hugging Face listed on `day` that are trending most, in the
    order of `papers_of_day` (`trending_order`)."""
    rows = session.scalars(select(PaperRow).where(PaperRow.hf_listed == day))
    return sorted((paper_from_row(row) for row in rows), key=trending_order)[:count]
