"""digest: self-hosted daily email digests of new research papers.

The data flows one way: sources -> store -> match -> render -> send. `web`, `schedule`
and `cli` are thin entry points over those stages.
"""

__version__ = "0.1.0"
