"""Jobs that compose the stages: what the CLI, the scheduler and the web app call.

One module per job; each takes the settings, the database and an injected `now`, runs
the stages in order (sources -> store -> match -> render -> send), and returns a result
the caller prints, logs or shows.
"""

from digest.jobs.fetch import FetchReport, fetch_sources, paper_to_dict, stored_papers
from digest.jobs.preview import Preview, preview_digest, save_preview, subscriber_for_interests

__all__ = [
    "FetchReport",
    "Preview",
    "fetch_sources",
    "paper_to_dict",
    "preview_digest",
    "save_preview",
    "stored_papers",
    "subscriber_for_interests",
]
