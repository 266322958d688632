"""The gateway's SQLite DB thread: urgent work (a waiting request) goes before background work
(usage rows), and background work is never starved."""

import threading

from inference_app.gateway.db_threads import URGENT_STREAK, _SingleThread


def run_in_order(jobs: list[bool]) -> list[str]:
    worker = _SingleThread("test-db-thread")
    gate = threading.Event()
    order: list[str] = []
    blocker = worker.submit(True, gate.wait, (5,), {})  # holds the thread while we queue
    futures = [
        worker.submit(urgent, order.append, (f"{'u' if urgent else 'b'}{i}",), {})
        for i, urgent in enumerate(jobs)
    ]
    gate.set()
    blocker.result(5)
    for future in futures:
        future.result(5)
    return order


def test_urgent_jobs_overtake_queued_background_jobs():
    assert run_in_order([False, False, True, True]) == ["u2", "u3", "b0", "b1"]


def test_background_jobs_get_a_turn_under_sustained_urgent_load():
    order = run_in_order([False] + [True] * (URGENT_STREAK * 2))
    # The blocker counted as the first urgent job of the streak.
    assert order.index("b0") == URGENT_STREAK - 1


def test_errors_reach_the_caller():
    worker = _SingleThread("test-db-thread")
    future = worker.submit(False, int, ("not a number",), {})
    try:
        future.result(5)
    except ValueError:
        pass
    else:
        raise AssertionError("the error was swallowed")
