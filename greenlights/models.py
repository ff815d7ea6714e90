"""Greenlight runs: one row per run, one per check result, with what was measured."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class State(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    GREEN = "green", "Green"
    YELLOW = "yellow", "Yellow"
    RED = "red", "Red"


SEVERITY = {State.GREEN: 0, State.YELLOW: 1, State.RED: 2}


class GreenlightRun(models.Model):
    class Trigger(models.TextChoices):
        PAGE = "page", "Run now (page)"
        COMMAND = "command", "manage.py greenlights"
        SCHEDULE = "schedule", "Celery beat"
        NIGHTLY = "nightly", "Nightly synthetic call"

    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    only = models.JSONField(default=list, blank=True, help_text="Checks run; empty: all.")
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # The database refuses a second run while one is running: two clicks, a click
            # and the schedule, or two workers cannot start two runs.
            models.UniqueConstraint(fields=["state"], condition=Q(state="running"),
                                    name="greenlights_one_running_run"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.state})"


class GreenlightResult(models.Model):
    run = models.ForeignKey(GreenlightRun, on_delete=models.CASCADE, related_name="results")
    name = models.CharField(max_length=40)
    category = models.CharField(max_length=20)
    state = models.CharField(max_length=10, choices=State.choices)
    summary = models.CharField(max_length=200, blank=True)
    values = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    ms = models.PositiveIntegerField(default=0)
    call = models.ForeignKey("calls.Call", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="greenlight_results",
                             help_text="The synthetic call this check placed.")
    finished_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "name"],
                                               name="greenlights_one_result_per_check")]

    def __str__(self) -> str:
        return f"{self.name}: {self.state}"
