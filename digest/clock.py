"""Where the service gets the time.

Library functions take `now` as an argument; the entry points (`digest run`, the
scheduler, the web app) get it from a clock. The system clock is the default. For
end-to-end tests of the running service, `DIGEST_CLOCK_FILE` names a file holding an
ISO 8601 time that the service takes as "now" (re-read at each call), so a test can move
a subprocess's time across a fetch and a send time without waiting hours.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from digest.errors import ConfigError

Clock = Callable[[], datetime]
CLOCK_FILE_VARIABLE = "DIGEST_CLOCK_FILE"

log = logging.getLogger(__name__)


def system_clock() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


def file_clock(path: Path) -> Clock:
    """A clock that reads the time from a file each time it is asked."""

    def now() -> datetime:
        try:
            value = datetime.fromisoformat(path.read_text().strip())
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"{CLOCK_FILE_VARIABLE} {path}: no ISO 8601 time in it: {error}"
            ) from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    now()  # fail at start, not in the middle of a job
    return now


def clock_from_environment(environ: Mapping[str, str] | None = None) -> Clock:
    """The system clock, or the file clock when DIGEST_CLOCK_FILE is set."""
    environ = os.environ if environ is None else environ
    path = environ.get(CLOCK_FILE_VARIABLE)
    if not path:
        return system_clock
    log.warning("taking the time from %s (%s is set): for tests only", path, CLOCK_FILE_VARIABLE)
    return file_clock(Path(path))
