"""The compatibility matrix: Node ``bullmq`` versions x Python port versions.

``compat.scenarios`` holds the interop scenarios (run by ``compat/run.py`` for
every version pair, and by ``tests/compat`` for the pinned pair);
``matrix.toml`` says which versions; ``MATRIX.md`` and ``matrix.json`` are the
generated verdict.
"""
