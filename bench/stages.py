"""The Celery app of :mod:`digest.celery`, with CPU timers around each stage of delivery,
for ``bench.daily``'s workers (``celery -A bench.stages worker``).

Each worker process adds up the CPU time (``time.process_time``) spent in
``plan_digests`` (plan and match), ``select_for_subscribers`` and ``prepare_edition``
(matching, inside planning), ``Renderer.digest``/``nothing`` (render), ``make_email``
(compose) and ``send_planned`` (send, rendering and composing included), and in whole
tasks, and after every task writes its totals to ``$BENCH_STAGES_DIR/<pid>.json``. The
wrappers are installed before the pool forks, so every process runs them; the code they
wrap is unchanged. A function that is not there (renamed) is left out.
"""

from __future__ import annotations

import cProfile
import functools
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django
from celery.signals import task_postrun, task_prerun

from digest.celery import app

django.setup()

import digest.delivery.message as message  # noqa: E402
import digest.delivery.pipeline as pipeline  # noqa: E402
import digest.delivery.plan as plan  # noqa: E402
import digest.tasks as tasks  # noqa: E402
from digest.delivery.render import Renderer  # noqa: E402

__all__ = ["app"]

SPENT: Counter[str] = Counter()
COUNTS: Counter[str] = Counter()
OUT = Path(os.environ.get("BENCH_STAGES_DIR") or ".")


def _timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[stage] += time.process_time() - started
            COUNTS[stage] += 1

    return wrapper


_WRAPPED = [
    (pipeline, "plan_digests", "plan_and_match"),
    (plan, "select_for_subscribers", "match"),
    (plan, "prepare_edition", "prepare_edition"),
    (Renderer, "digest", "render"),
    (Renderer, "nothing", "render"),
    (message, "make_email", "compose"),
    (pipeline, "send_planned", "send_total"),
    (tasks, "send_planned", "send_total"),
]
for owner, name, stage in _WRAPPED:
    if hasattr(owner, name):
        setattr(owner, name, _timed(stage, getattr(owner, name)))

_started: dict[str, float] = {}
# BENCH_PROFILE_DIR set: each process also profiles its tasks (cProfile) and writes the
# statistics (CPU time of the task thread) to <dir>/<pid>.prof after every task.
PROFILE_DIR = os.environ.get("BENCH_PROFILE_DIR")
_profiler = cProfile.Profile(time.thread_time) if PROFILE_DIR else None  # CPU, this thread


@task_prerun.connect
def _task_started(task_id: str | None = None, **_: Any) -> None:
    _started[task_id or ""] = time.process_time()
    if _profiler is not None:
        _profiler.enable()


@task_postrun.connect
def _task_finished(task_id: str | None = None, **_: Any) -> None:
    if _profiler is not None:
        _profiler.disable()
        _profiler.dump_stats(f"{PROFILE_DIR}/{os.getpid()}.prof")
    SPENT["tasks"] += time.process_time() - _started.pop(task_id or "", time.process_time())
    COUNTS["tasks"] += 1
    path = OUT / f"{os.getpid()}.json"
    path.write_text(json.dumps({"seconds": dict(SPENT), "calls": dict(COUNTS)}))
