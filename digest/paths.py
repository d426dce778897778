"""Where digest's shipped files are: the Jinja templates.

In a checkout (and an editable install) the templates sit at the top of the repository,
`templates/`; a built wheel ships them inside the package as `digest/templates/`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def templates_dir() -> Path:
    """The folder holding `email/` and `web/` templates."""
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"digest's templates are missing (looked in {_PACKAGE})")
