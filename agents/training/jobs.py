"""Running GPU jobs: one Job model for merge, merge search and fine-tune.

A job runs on Celery's ``gpu`` queue (``job_run_task``) or in the calling process
(``--here``). While it runs, a heartbeat stamps it; the upkeep loop of any worker ends a
job whose worker died ``failed`` (``jobs_reap_stale``). Progress, log lines and metrics
are saved as they come (throttled) so the job page shows them live; cancel is polled
between tensors (merge) or optimizer steps (fine-tune), and an output directory is only
renamed into place when complete, so a cancelled or failed job leaves no half-written
artifact.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, Value
from django.db.models.functions import Now
from django.utils import timezone

from tooltrail.forksafe import database_work

from .models import Job

logger = logging.getLogger(__name__)
LOG_LIMIT = 200_000  # characters of log kept on the job (the tail)


class JobError(Exception):
    """The job cannot do what was asked; the message says why."""


class JobCancelled(Exception):
    """Someone asked the job to stop."""


def job_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class JobContext:
    """What a job body reports through: progress, log lines, metrics and cancel."""

    def __init__(self, job: Job, *, save_every: float = 0.5) -> None:
        self.job = job
        self.device = job.device or job_device()
        self.save_every = save_every
        self._last_save = 0.0
        self._lines: list[str] = []

    def cancelled(self) -> bool:
        return Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists()

    def check_cancel(self) -> None:
        if self.cancelled():
            raise JobCancelled("cancelled by a user")

    def log(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        self._lines.append(f"{stamp} {line}")
        self._save(force=False)

    def progress(self, fraction: float, message: str = "") -> None:
        self.job.progress = max(0.0, min(1.0, fraction))
        if message:
            self.job.message = message[:300]
        self._save(force=False)

    def metric(self, **values: Any) -> None:
        """Record metrics; a list-valued key (e.g. ``loss``) grows by one point per call."""
        for key, value in values.items():
            series = self.job.metrics.get(f"{key}_series")
            if isinstance(series, list) or key in ("loss", "eval_loss"):
                self.job.metrics.setdefault(f"{key}_series", []).append(value)
            self.job.metrics[key] = value
        self._save(force=False)

    def flush(self) -> None:
        self._save(force=True)

    def _save(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_save < self.save_every:
            return
        self._last_save = now
        if self._lines:
            self.job.log = (self.job.log + "\n".join(self._lines) + "\n")[-LOG_LIMIT:]
            self._lines = []
        Job.objects.filter(pk=self.job.pk).update(
            progress=self.job.progress,
            message=self.job.message,
            log=self.job.log,
            metrics=self.job.metrics,
            heartbeat_at=Now(),
        )


def job_create(*, kind: str, name: str, config: dict[str, Any], user=None) -> Job:
    if kind not in Job.Kind.values:
        raise JobError(f"unknown job kind {kind!r}: one of {', '.join(Job.Kind.values)}")
    from .artifacts import ArtifactError, artifacts_dir  # noqa: F401 - checks the folder exists
    from .models import ModelArtifact

    if ModelArtifact.objects.filter(name=name).exists():
        raise JobError(f"an artifact named {name!r} exists already; the job would overwrite it")
    return Job.objects.create(
        kind=kind,
        name=name,
        config=config,
        created_by=user if user is not None and user.is_authenticated else None,
    )


def job_enqueue(*, job: Job) -> None:
    """Send the job to the ``gpu`` queue once the caller's transaction commits."""
    from agents.tasks import job_run_task

    def send() -> None:
        try:
            job_run_task.apply_async(args=[job.id], retry=False)
        except Exception as exc:  # noqa: BLE001 - a broker that cannot be reached
            _finish(job.id, Job.Status.FAILED, error=f"could not enqueue the job: {exc}")

    transaction.on_commit(send)


def job_cancel(*, job_id: int) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.is_finished:
            raise JobError(f"the job is already {job.status}")
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
        if job.status == Job.Status.QUEUED:
            return _finish(job.id, Job.Status.CANCELLED, error="cancelled before it started")
    return job


def job_rerun(*, job: Job, config: dict[str, Any] | None = None, name: str = "", user=None) -> Job:
    """A new job with the same kind and settings (or edited ones)."""
    return job_create(
        kind=job.kind, name=name or f"{job.name}-again", config=config or job.config, user=user
    )


def _finish(job_id: int, status: str, *, error: str = "", resources: dict | None = None) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.is_finished:
            return job
        job.status = status
        job.error = error[:5000]
        job.ended_at = timezone.now()
        if resources:
            job.resources = resources
        if status == Job.Status.SUCCEEDED:
            job.progress = 1.0
        job.save(update_fields=["status", "error", "ended_at", "resources", "progress"])
    return job


class _Heartbeat:
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._loop, daemon=True, name=f"job-heartbeat-{job_id}"
        )

    def _loop(self) -> None:
        try:
            while not self.stop.wait(settings.TOOLTRAIL_HEARTBEAT_SECONDS):
                try:
                    with database_work():  # not while the job's process forks
                        Job.objects.filter(pk=self.job_id, status=Job.Status.RUNNING).update(
                            heartbeat_at=Now()
                        )
                except Exception:  # noqa: BLE001 - retried next beat
                    logger.exception("heartbeat for job %s failed", self.job_id)
        finally:
            with database_work():
                connection.close()

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _handlers() -> dict[str, Callable[[Job, JobContext], Any]]:
    from .merge_job import merge_job_run, merge_search_job_run
    from .sft import sft_job_run

    return {
        Job.Kind.MERGE: merge_job_run,
        Job.Kind.MERGE_SEARCH: merge_search_job_run,
        Job.Kind.SFT: sft_job_run,
    }


def job_run(*, job_id: int) -> Job | None:
    """Run a queued job to its end in this process. Returns the finished job, or None if
    it was not queued (a redelivered task, or cancelled before it started)."""
    close_old_connections()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != Job.Status.QUEUED:
            return None
        job.status = Job.Status.RUNNING
        job.started_at = timezone.now()
        job.heartbeat_at = job.started_at
        job.worker = f"{socket.gethostname()}:{os.getpid()}"
        job.device = job_device()
        job.save(update_fields=["status", "started_at", "heartbeat_at", "worker", "device"])
    context = JobContext(job)
    started = time.perf_counter()
    import torch

    if job.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    status, error = Job.Status.SUCCEEDED, ""
    with _Heartbeat(job.id):
        try:
            context.log(f"{job.get_kind_display()} on {job.device} ({job.worker})")
            _handlers()[job.kind](job, context)
            context.log("done")
        except JobCancelled as exc:
            status, error = Job.Status.CANCELLED, str(exc)
            context.log(f"cancelled: {exc}")
        except Exception as exc:  # noqa: BLE001 - every failure ends the job with its reason
            from agents.training.merge import MergeCancelled

            if isinstance(exc, MergeCancelled):
                status, error = Job.Status.CANCELLED, "cancelled by a user; partial output removed"
            else:
                logger.exception("job %s failed", job.id)
                status, error = Job.Status.FAILED, f"{type(exc).__name__}: {exc}"
            context.log(error)
        finally:
            context.flush()
    resources = {
        "wall_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if job.device == "cuda":
        resources["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return _finish(job.id, status, error=error, resources=resources)


def jobs_reap_stale(*, stale_after: float | None = None) -> list[Job]:
    """End every running job whose worker stopped beating (killed GPU worker): failed."""
    seconds = settings.TOOLTRAIL_STALE_AFTER_SECONDS if stale_after is None else stale_after
    # The database's clock on both sides, so workers with skewed clocks agree.
    cutoff = ExpressionWrapper(
        Now() - Value(timedelta(seconds=seconds)), output_field=DateTimeField()
    )
    reaped = []
    for job_id in Job.objects.filter(
        status=Job.Status.RUNNING, heartbeat_at__lt=cutoff
    ).values_list("id", flat=True):
        job = Job.objects.get(pk=job_id)
        reaped.append(
            _finish(
                job_id,
                Job.Status.FAILED,
                error=f"worker lost: {job.worker or 'unknown worker'} sent no heartbeat for "
                f"{seconds:g} s; the job was abandoned (no artifact was written)",
            )
        )
    return reaped
