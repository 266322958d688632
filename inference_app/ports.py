"""Is a local TCP port free to listen on? Checked before starting servers, so that a port in use
is named in a sentence instead of surfacing as a child process's exit code."""

from __future__ import annotations

import errno
import socket


def listen_problem(host: str, port: int) -> str | None:
    """None if a server could listen on host:port now; otherwise why not ("in use", ...).

    SO_REUSEADDR as daphne and llama.cpp set it: a port whose last connections linger in
    TIME_WAIT is free for them, and must not be reported as in use."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror}"
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "in use"
            return exc.strerror or str(exc)
    return None


def next_free_port(host: str, after: int, *, tries: int = 50) -> int | None:
    """The first port above `after` that a server could listen on now, to suggest instead."""
    for port in range(after + 1, min(after + 1 + tries, 65536)):
        if listen_problem(host, port) is None:
            return port
    return None


def port_in_use_message(host: str, port: int, *, what: str, variable: str) -> str | None:
    """A sentence for the user when `what` ("the web port") cannot listen on host:port, naming
    the environment variable that picks another; None when the port is free."""
    problem = listen_problem(host, port)
    if problem is None:
        return None
    if problem != "in use":
        return f"cannot listen on {host}:{port} ({what}): {problem}"
    other = next_free_port(host, port) or port + 1
    return (
        f"{what} {port} is already in use (is another Yardstick running? "
        f"{variable}={other} make run picks another)"
    )
