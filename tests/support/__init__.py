"""Harness for live tests: the product run for real, in subprocesses (daphne, engines, manage.py)."""
