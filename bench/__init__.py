"""Benchmarks: ``python -m bench.<name>`` prints and returns a dict of measured numbers."""
