"""Serving stored private files (agreement attachments, premises photos) to the user a view has
already scoped: the web pages and the API answer with the same headers."""

from django.http import FileResponse, Http404


def private_file_response(
    field_file, *, content_type: str, filename: str, as_attachment: bool
) -> FileResponse:
    """A stored file never cached by shared caches, never sniffed as HTML, sandboxed if a browser opens it."""
    try:
        handle = field_file.open("rb")
    except (FileNotFoundError, ValueError):
        raise Http404("The file is missing.") from None
    response = FileResponse(handle, as_attachment=as_attachment, filename=filename, content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    return response
