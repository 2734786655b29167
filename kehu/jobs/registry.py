"""Job kinds: a name, a label and the function that does the work.

A handler is ``handler(job, progress) -> dict``: it calls the domain's service acting as
``job.created_by`` (so scoping and audit apply as if the person did it by hand), reports
``progress(done, total)`` now and then, and returns a JSON-able result. A result with ``"ok": False``
(and a ``"message"``) ends the job as failed but keeps the result (e.g. an import's row errors); a
ServiceError it raises ends the job as failed with that message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.functional import Promise


@dataclass(frozen=True)
class JobKind:
    name: str
    label: str | Promise
    handler: Callable


JOB_KINDS: dict[str, JobKind] = {}


def register(name: str, label: str | Promise):
    def decorator(handler: Callable) -> Callable:
        JOB_KINDS[name] = JobKind(name=name, label=label, handler=handler)
        return handler

    return decorator
