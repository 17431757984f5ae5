"""Benchmarks and soaks of aioimds (not timed tests): ``python -m bench``."""
