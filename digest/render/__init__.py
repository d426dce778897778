"""The render stage: a subscriber's matches -> a complete email `Message`.

- `renderer`: `DigestRenderer`, built once per run, makes every message of the run.
- `cards`: each paper's card made once, kept filled and encoded per (paper, matches).
- `skeleton`: pages and cards rendered and CSS-inlined once, filled per message.
- `view`: what the emails show (dates, headings, card views) and the size caps.
- `snippet`: the abstract window around the first match, with the matches marked.
- `mime`: header encoding and message assembly, written as bytes.

The message record itself is `digest.message.Message`; the mail settings behind its
headers (senders, List-Id, DKIM) are checked in `digest.config.mail`.
"""

from digest.message import Message
from digest.render.renderer import DigestRenderer

__all__ = ["DigestRenderer", "Message"]
