"""Flask reference app: a blocking producer made at import, used by a view; a second view polls the result.

Run it (docs/flask.md)::

    export BULLBRIDGE_REDIS_URL=redis://localhost:6379
    gunicorn --preload -w 4 -b 127.0.0.1:8000 examples.flask_app.app:app
    bullbridge worker examples.flask_app.worker:worker      # or any Node worker on queue "reports"
"""
