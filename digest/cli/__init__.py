"""The `digest` command: a thin layer of click commands over the library.

- `app`: the command group, the shared context (settings, store) and how a command
  reports a failure (one line) and logs.
- `commands`: the commands themselves, each a few lines over one library function.
- `subscribers`: `digest subscribers ...`, the readers for the operator.
- `models`: `digest models rebuild|status`, the readers' learned models.
"""

from digest.cli import commands, models, subscribers  # noqa: F401  (registers the commands on `cli`)
from digest.cli.app import cli, main

__all__ = ["cli", "main"]
