"""The send stage: deliver rendered messages from the outbox, exactly once.

`send_due` (in `delivery`) is the entry point for `digest send` and the scheduler;
`backends` is the interface both delivery backends offer: `smtp` (persistent, parallel
connections, TLS, AUTH) and `maildir` (the default without a mail server); `policy`
says what each outcome does (retries with backoff, bounces). Rows are queued with
`digest.store.outbox.queue_message`.
"""

from digest.send.delivery import SenderBusy, SendReport, make_backend, send_due

__all__ = ["SendReport", "SenderBusy", "make_backend", "send_due"]
