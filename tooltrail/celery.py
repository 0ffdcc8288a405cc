"""The Celery app. Workers: ``celery -A tooltrail worker -Q agents`` and ``-Q gpu``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tooltrail.settings")

app = Celery("tooltrail")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
