"""A background job: who started it, what it does, its input file, how far it got and how it ended."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kehu.core.scoping import ScopedQuerySet, ScopePolicy


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("done")
    FAILED = "failed", _("failed")


class Job(models.Model):
    kind = models.CharField(_("kind"), max_length=64)
    status = models.CharField(_("status"), max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    created_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="jobs")
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    input_name = models.CharField(_("file"), max_length=255, blank=True)
    input_file = models.FileField(upload_to="jobs/%Y/%m/", blank=True)
    result = models.JSONField(_("result"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = ScopedQuerySet.as_manager()

    # A job is its starter's own, whatever their roles' data scopes (administrators have none): its
    # result may hold what only they may see.
    scope_policy = ScopePolicy(unit=None, owners=(), extra=lambda user: Q(created_by=user))

    class Meta:
        verbose_name = _("background job")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_by", "-created_at"], name="jobs_by_creator")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
