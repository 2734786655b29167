"""Background jobs: long work (imports, the monthly close, reports) run as Celery tasks with progress."""
