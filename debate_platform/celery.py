import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "debate_platform.settings")

app = Celery("debate_platform")
# All Celery settings live in Django settings under the CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
