"""Runnable examples (``python -m examples.layer15``): see each package's docstring."""
