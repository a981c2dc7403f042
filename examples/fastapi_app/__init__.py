"""FastAPI reference app: the lifespan starts a WorkerManager and an async producer;
a request enqueues into a Node worker's queue and awaits the result.

Run it (docs/fastapi.md)::

    export BULLBRIDGE_REDIS_URL=redis://localhost:6379
    uvicorn examples.fastapi_app.app:app --port 8000
    node my-image-worker.js        # any Node BullMQ worker on queue "images"
"""
