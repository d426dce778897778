"""The render stage: a subscriber's matches -> a complete email `Message`.

- `renderer`: `DigestRenderer` (built once per run) and the `Message` it produces.
- `skeleton`: pages and cards rendered and CSS-inlined once, filled per message.
- `view`: what the emails show (dates, headings, card views) and the size caps.
- `snippet`: the abstract window around the first match, with the matches marked.
- `mime`: address and URL checks, header encoding, message assembly, DKIM signing.
"""

from digest.render.renderer import (
    DigestRenderer,
    Message,
    render_confirmation,
    render_digest,
    render_manage_link,
)

__all__ = [
    "DigestRenderer",
    "Message",
    "render_confirmation",
    "render_digest",
    "render_manage_link",
]
