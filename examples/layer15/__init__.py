"""The background-jobs layer of the seed design, in Python on bullbridge.

Five queues shared with Node.js on one Redis:

=================  ===========================================  =====================
queue              jobs                                         served by
=================  ===========================================  =====================
email              send (priority, 100/min), newsletter         Python *and* Node
image-processing   process (CPU-bound, progress per operation)  Python
data-sync          sync (fans out batches, sums them), backup   Python
analytics          track, daily-report, cleanup                 Python
notifications      push                                         Node
=================  ===========================================  =====================

Run it with ``python -m examples.layer15`` (or ``bullbridge worker
examples.layer15.app:make``) against ``BULLBRIDGE_REDIS_URL``, and feed it
with ``node interop/layer15/producer.js``. This module imports nothing, so the
image worker's processes load only :mod:`examples.layer15.images`.
"""
