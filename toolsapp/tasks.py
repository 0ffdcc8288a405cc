"""Celery tasks: thin, they call a service."""

from celery import shared_task


# Beat runs it every TOOLTRAIL_MCP_SYNC_SECONDS (settings.CELERY_BEAT_SCHEDULE).
@shared_task(name="toolsapp.tasks.mcp_sync_all_task")
def mcp_sync_all_task() -> dict[str, str]:
    from toolsapp.mcpservers import mcp_sync_all

    return mcp_sync_all()
