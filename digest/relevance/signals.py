"""Rebuild a subscriber's profile when their feedback changes: a vote, a changed vote, an
undo or a picked paper enqueues :func:`digest.tasks.rebuild_profile` once the change
commits (connected in :meth:`digest.apps.DigestConfig.ready`)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from digest.models import Feedback


@receiver(post_save, sender=Feedback, dispatch_uid="relevance_feedback_saved")
@receiver(post_delete, sender=Feedback, dispatch_uid="relevance_feedback_deleted")
def feedback_changed(sender: type[Feedback], instance: Feedback, **kwargs: Any) -> None:
    # Imported when needed, not at the top: the tasks module imports the whole pipeline,
    # which this module (loaded with the models) must not.
    rebuild = import_module("digest.tasks").rebuild_profile
    subscriber_id = instance.subscriber_id
    transaction.on_commit(lambda: rebuild.delay(subscriber_id))
