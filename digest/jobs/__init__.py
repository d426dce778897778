"""Jobs that compose the stages: what the CLI, the scheduler and the web app call.

One module per job; each takes the settings, the database and an injected `now`, runs
the stages in order (sources -> store -> match -> render -> send), and returns a result
the caller prints, logs or shows.
"""

from digest.jobs.digests import QueueReport, queue_due_digests
from digest.jobs.fetch import FetchReport, fetch_sources, paper_to_dict, stored_papers
from digest.jobs.mail import Courier, sample_digest_html, send_transactional
from digest.jobs.preview import Preview, preview_digest, save_preview, subscriber_for_interests

__all__ = [
    "Courier",
    "FetchReport",
    "Preview",
    "QueueReport",
    "fetch_sources",
    "paper_to_dict",
    "preview_digest",
    "queue_due_digests",
    "sample_digest_html",
    "save_preview",
    "send_transactional",
    "stored_papers",
    "subscriber_for_interests",
]
