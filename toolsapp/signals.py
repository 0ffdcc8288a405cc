"""Every saved or deleted tool is marked for the retrieval index (see ``ToolIndexChange``).

Bulk writes (``bulk_create``, ``QuerySet.update``) send no signals: services that write
tools that way call ``toolsapp.services.tool_index_mark`` with the ids they touched.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Tool
from .services import tool_index_mark


@receiver(post_save, sender=Tool, dispatch_uid="toolsapp.tool_index_saved")
def _tool_saved(sender, instance: Tool, raw: bool = False, **kwargs) -> None:
    tool_index_mark(tool_ids=[instance.pk])


@receiver(post_delete, sender=Tool, dispatch_uid="toolsapp.tool_index_deleted")
def _tool_deleted(sender, instance: Tool, **kwargs) -> None:
    tool_index_mark(tool_ids=[instance.pk])
