"""Where digest's files are: the shipped templates, and the private data it keeps.

In a checkout (and an editable install) the templates sit at the top of the repository,
`templates/`; a built wheel ships them inside the package as `digest/templates/`.

The data folder holds every reader's address and interests (the SQLite database), the
signing secret and mail carrying live links (the maildir): `private_folder`,
`private_file` and `tighten` keep such things to the service's user, whatever the umask.
"""

from __future__ import annotations

import logging
import os
import stat
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600
# Paths `tighten` could not make private and has said so: once per process is enough
# (the maildir is opened every few minutes).
_reported: set[Path] = set()

_PACKAGE = Path(__file__).resolve().parent


@cache
def templates_dir() -> Path:
    """The folder holding `email/` and `web/` templates."""
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"digest's templates are missing (looked in {_PACKAGE})")


def private_folder(path: Path) -> bool:
    """Create folder `path` (parents too) readable by this user only; True if created.

    The mode is set after `mkdir`, since the umask applies to `mkdir`'s own (0o277 would
    leave a folder we cannot write). Parents made on the way get the usual mode: only the
    folder itself holds private things. An existing folder is left as it is (`tighten`).
    """
    try:
        path.mkdir(mode=PRIVATE_FOLDER)
    except FileNotFoundError:  # a parent is missing: make those the usual way, then this
        path.parent.mkdir(parents=True, exist_ok=True)
        return private_folder(path)
    except FileExistsError:
        return False
    os.chmod(path, PRIVATE_FOLDER)
    return True


def private_file(path: Path) -> bool:
    """Create an empty file `path` readable by this user only, unless it exists; True if made.

    Created exclusively and with its mode set on the open descriptor, so it is never
    readable by others, not even for a moment, whatever the umask.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.fchmod(descriptor, PRIVATE_FILE)
    finally:
        os.close(descriptor)
    return True


def tighten(path: Path, what: str) -> None:
    """Take away what group and others may do with `path`, if anything; say so in the log.

    Files and folders made by an older digest (or by hand) may be readable by every local
    user; they hold personal data, so they are made private at start rather than only
    reported: nothing legitimate needs another user to read them. The owner's own
    permissions are kept. When the mode cannot be changed (another user owns the path),
    a warning says so once, naming the path and its mode. A missing path is no error.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):  # not there: nothing to make private
        return
    if not mode & 0o077:
        return
    private = mode & ~0o077
    try:
        os.chmod(path, private)
    except OSError as error:
        if path in _reported:
            return
        _reported.add(path)
        log.warning(
            "%s %s is open to other users (mode %04o) and digest cannot change that (%s): "
            "make it private to digest's user, e.g. chmod go= %s",
            what,
            path,
            mode,
            error.strerror or error,
            path,
        )
        return
    log.warning(
        "%s %s was open to other users: made it private (mode %04o, was %04o)",
        what,
        path,
        private,
        mode,
    )
