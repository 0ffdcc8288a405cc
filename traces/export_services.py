"""Dataset exports: pick the labelled traces, run an exporter, write the files.

``dataset_export`` is what both ``manage.py export_dataset`` and the UI's Celery task
call; the UI's exports are zipped under ``VAR_DIR/exports/<id>/`` for download.
"""

from __future__ import annotations

import shutil
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import agreement
from .annotation_models import AnnotationQueue, Export, QueueItem
from .annotation_selectors import labelled_trace_ids, queue_agreement, trace_records
from .annotation_services import trace_filter_check, trace_ids_matching
from .exporters import EXPORTERS
from .exporters.files import ExportError, export_write

Progress = Callable[[float], None]


def export_trace_ids(*, queue_id: int | None = None, filter: dict[str, Any] | None = None) -> list:
    """The labelled traces an export covers: a queue's, a filter's, or (neither) all."""
    within = None
    if queue_id is not None:
        if not AnnotationQueue.objects.filter(pk=queue_id).exists():
            raise ExportError(f"there is no queue {queue_id}")
        within = list(
            QueueItem.objects.filter(queue_id=queue_id)
            .values_list("trace_id", flat=True)
            .distinct()
        )
    if filter:
        from .annotation_services import QueueError

        try:
            matching = trace_ids_matching(trace_filter_check(filter))
        except QueueError as exc:
            raise ExportError(str(exc)) from exc
        within = matching if within is None else [t for t in within if t in set(matching)]
    return labelled_trace_ids(within=within)


def _stats(records: list, *, queue_id: int | None, source: dict[str, Any]) -> dict[str, Any]:
    verdicts, categories = Counter(), Counter()
    units = []
    for trace in records:
        for step in trace.steps:
            if step.label:
                verdicts[step.label.verdict] += 1
                if step.label.category:
                    categories[step.label.category] += 1
            people = {lab.author: lab.verdict for lab in step.labels if not lab.gold}
            if people:
                units.append(people)
    if queue_id is not None:
        found = queue_agreement(queue=AnnotationQueue.objects.get(pk=queue_id))
        agree = {"kappa": found["kappa"], "alpha": found["alpha"], "units": found["units"]}
    else:
        agree = agreement.summary(units)
    return {"verdicts": verdicts, "categories": categories, "agreement": agree, "source": source}


def dataset_export(
    *,
    format: str,
    out_dir: Path | str,
    queue_id: int | None = None,
    filter: dict[str, Any] | None = None,
    split: float | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Export the labelled traces (of ``queue_id`` and/or ``filter``, else all) as
    ``format`` into ``out_dir``. Checks everything before writing; raises ExportError
    with the reason (nothing written) when it cannot. Same input, same seed → the same
    bytes in every data file."""
    if format not in EXPORTERS:
        raise ExportError(f"unknown format {format!r}; use {', '.join(EXPORTERS)}")
    if split is not None and not 0 < split < 1:
        raise ExportError("--split must be between 0 and 1 (the train share), e.g. 0.9")
    trace_ids = export_trace_ids(queue_id=queue_id, filter=filter)
    records = trace_records(
        trace_ids=trace_ids,
        progress=(lambda done, total: progress(0.8 * done / total)) if progress else None,
    )
    rows = EXPORTERS[format].rows(records)
    source = {"queue": queue_id, "filter": filter or {}, "split": split, "seed": seed}
    result = export_write(
        format=format,
        columns=EXPORTERS[format].columns,
        rows=rows,
        out_dir=Path(out_dir),
        split=split,
        seed=seed,
        stats=_stats(records, queue_id=queue_id, source=source),
        exported_at=timezone.now().strftime("%Y-%m-%d %H:%M UTC"),
    )
    if progress:
        progress(1.0)
    return {**result, "traces": len(records)}


# --- from the UI ------------------------------------------------------------------------


def export_dir(export: Export) -> Path:
    return Path(settings.VAR_DIR) / "exports" / str(export.id)


def export_archive(export: Export) -> Path:
    return export_dir(export) / f"tooltrail-{export.format}-{str(export.id)[:8]}.zip"


def export_start(
    *, user, format: str, queue_id: int | None = None, split: float | None = None, seed: int = 0
) -> Export:
    """Record an export and run it on a worker once this commits."""
    if format not in EXPORTERS:
        raise ExportError(f"unknown format {format!r}; use {', '.join(EXPORTERS)}")
    if split is not None and not 0 < split < 1:
        raise ExportError("split must be between 0 and 1 (the train share), e.g. 0.9")
    from .tasks import export_run_task

    with transaction.atomic():
        export = Export.objects.create(
            format=format, queue_id=queue_id, split=split, seed=seed, created_by=user
        )
        export_run_task.delay_on_commit(str(export.id))
    return export


def export_run(*, export_id: uuid.UUID | str) -> Export:
    """Run a recorded export: write its files, zip them, note progress as it goes."""
    export = Export.objects.get(pk=export_id)
    if export.status not in (Export.Status.QUEUED, Export.Status.RUNNING):
        return export
    Export.objects.filter(pk=export.pk).update(status=Export.Status.RUNNING, progress=0.0)
    out = export_dir(export)
    data = out / "data"
    shutil.rmtree(out, ignore_errors=True)

    def progress(value: float) -> None:
        Export.objects.filter(pk=export.pk).update(progress=round(value * 0.95, 3))

    try:
        result = dataset_export(
            format=export.format,
            out_dir=data,
            queue_id=export.queue_id,
            filter=export.filter or None,
            split=export.split,
            seed=export.seed,
            progress=progress,
        )
    except ExportError as exc:
        Export.objects.filter(pk=export.pk).update(
            status=Export.Status.FAILED, error=str(exc), finished_at=timezone.now()
        )
        return Export.objects.get(pk=export.pk)
    with zipfile.ZipFile(export_archive(export), "w", zipfile.ZIP_DEFLATED) as archive:
        for name in result["files"]:
            archive.write(data / name, arcname=name)
    Export.objects.filter(pk=export.pk).update(
        status=Export.Status.DONE,
        progress=1.0,
        rows=result["rows"],
        finished_at=timezone.now(),
    )
    return Export.objects.get(pk=export.pk)
