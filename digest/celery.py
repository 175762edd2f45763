"""The Celery app, configured from Django settings under the ``CELERY_`` namespace.

Tasks are found by autodiscovery in each installed app's ``tasks`` module. With
``CELERY_BROKER_URL`` unset, ``CELERY_TASK_ALWAYS_EAGER`` makes every task run in-process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")

app = Celery("digest")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
