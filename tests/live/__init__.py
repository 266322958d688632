"""Live tests: the product run for real (daphne processes, manage.py, engines in subprocesses),
driven with the official openai client. Harness: tests/support/.

    pytest tests/live -m "not engine and not scaled"   SQLite, one daphne, fake/broken engines
    pytest tests/live -m engine                        the real embedded engine (SmolLM2)
    pytest tests/live -m scaled                        PostgreSQL + Redis, two daphne processes
"""
