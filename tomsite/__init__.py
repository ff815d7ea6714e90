"""TOM's Django project: settings, routing and the Celery app; no business logic."""

from tomsite.celery import app as celery_app

__all__ = ("celery_app",)
