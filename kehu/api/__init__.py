"""The REST API under /api/v1/ (django-ninja), with token authentication and an OpenAPI schema."""
