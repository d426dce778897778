"""Task workers: the digest job and delivery spread over Celery workers (Redis broker).

Optional (`pip install '.[celery]'`, `[queue] broker = "redis://..."`): without a broker
the scheduler matches, renders and sends in its own process, as always. With one, the
scheduler only plans (`digest.tasks.dispatch`), and `digest worker` processes on any
number of hosts run the tasks (`digest.tasks.work`):

- **digest batch**: a range of due reader ids of one planned run: match, render, queue in
  the outbox and move the watermarks, one transaction per batch
  (`digest.jobs.digests.queue_digest_batch`); the run's papers are indexed once per worker
  process and reused across its batches. A batch that queued digests asks for their
  delivery (send chunks).
- **send chunk**: claim and deliver up to `[queue] send_chunk` due outbox rows
  (`digest.send.send_due`), digests and confirmation emails alike.

Exactly-once lives where it lives without a queue, in the outbox and the watermarks, not
in the broker: tasks are acknowledged late and redelivered when a worker is lost, and a
task that runs twice changes nothing the second time (a watermark moves only from the
value its run read; outbox rows are claimed before they are sent). A task that never
runs is found by the next scheduler tick: its readers are still due, its rows still
queued.
"""

from __future__ import annotations

DIGEST_QUEUE = "digests"
SEND_QUEUE = "send"
QUEUES = (DIGEST_QUEUE, SEND_QUEUE)
