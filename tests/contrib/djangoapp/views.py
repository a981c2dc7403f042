"""A view that writes a row and enqueues a task in the same request (``ATOMIC_REQUESTS``)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from tests.contrib.djangoapp import tasks
from tests.contrib.djangoapp.models import Note


def create_note(request: HttpRequest) -> JsonResponse:
    note = Note.objects.create(text=request.POST["text"])
    result = tasks.write_note.enqueue(f"copy of {note.pk}")  # sent when the request's transaction commits
    if request.POST.get("fail"):
        raise RuntimeError("the view fails after enqueueing")
    return JsonResponse({"note": note.pk, "task": result.id})
