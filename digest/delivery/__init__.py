"""Delivery: plan, render, compose and send each subscriber's digest — claim first, then send.

The database records what was sent; the broker and the workers only carry ids.

* **Planning** inserts the :class:`Digest` row of each subscriber's edition if absent
  (unique per (subscriber, period)), then, holding the row lock, chooses its papers —
  :class:`DigestItem` rows, unique per (subscriber, paper), so a paper never goes to the
  same subscriber twice — and its Message-ID. Planning again changes nothing.
* **Sending** moves each digest ``pending → sending`` with a conditional UPDATE (the row
  count says who won), hands its message to one of ``DIGEST_SEND_CONCURRENCY`` sender
  threads (each with a mail connection of its own), then marks it ``sent`` once the
  server accepted it — in a batch, in the same statement and commit as the next claim,
  so each digest costs one commit. Two workers handed the same digest send one message.
  A lost database connection while a mark is pending is reconnected and the mark
  recorded (``DIGEST_DB_RETRY_SECONDS``).
* **Errors.** A transient error (:func:`is_transient`: the ESP's API, SMTP, the network)
  puts the digest back to ``pending`` and the batch is retried with exponential backoff
  and jitter (:func:`retry_countdown`); after ``DIGEST_MAX_ATTEMPTS`` attempts, or at
  once for an address the server refuses, it is ``failed`` and its papers are released
  so a later digest can carry them.
* **A worker killed while sending** leaves its digest ``sending``. Once
  ``DIGEST_SENDING_LEASE`` has passed since the attempt began, the digest may be claimed
  again and is re-sent with the Message-ID stored at planning, so no digest goes missing.
  The price is a window of one message per send in flight: if the worker died after
  the server accepted a message but before its ``sent`` UPDATE committed (a millisecond
  or so), the recipient gets that message twice, with the same Message-ID.


Modules, in the order a digest meets them:

* :mod:`~digest.delivery.plan` — claim the edition's :class:`~digest.models.Digest` row
  and choose its papers (:mod:`digest.matching` does the matching);
* :mod:`~digest.delivery.render` — paper cards and digest bodies, text and HTML;
* :mod:`~digest.delivery.compose` — a MIME message from the templates of one kind of
  email (:func:`~digest.delivery.compose.make_email`);
* :mod:`~digest.delivery.message` — a digest's email, with its list headers and links;
* :mod:`~digest.delivery.send` — claim-then-send over one mail connection, retries;
* :mod:`~digest.delivery.pipeline` — the bodies of the Celery tasks in :mod:`digest.tasks`;
* :mod:`~digest.delivery.preview` — a moderator's preview of a subscriber's next digest;
* :mod:`~digest.delivery.tracking` — bounces and complaints from the ESP's webhooks;
* :mod:`~digest.delivery.retention` — old digests' papers pruned on a schedule.
"""
