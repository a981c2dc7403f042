"""Integrations with web frameworks, each importing its framework only when used.

* :mod:`bullbridge.contrib.django` - a backend for Django's task framework
  (``django.tasks`` on Django 6, the ``django-tasks`` backport on 5.2) and the
  worker that runs Django tasks from BullMQ queues (docs/django.md).

Flask and FastAPI need nothing beyond :mod:`bullbridge.sync` and the async API:
``examples/flask_app`` and ``examples/fastapi_app`` (docs/flask.md, docs/fastapi.md).
"""
