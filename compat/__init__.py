"""The compatibility matrix: Node ``bullmq`` versions x Python port versions.

The interop scenarios are :mod:`bullbridge.conformance`'s (the ones
``bullbridge interop check`` runs); ``compat.scenarios`` runs them against one
version pair for ``compat/run.py``, and ``tests/compat`` runs them against the
pinned pair;
``matrix.toml`` says which versions; ``MATRIX.md`` and ``matrix.json`` are the
generated verdict.
"""
