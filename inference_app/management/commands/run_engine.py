import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference_app.embedded_engine import start_embedded_engine
from inference_app.ports import port_in_use_message


class Command(BaseCommand):
    help = "Run the embedded llama.cpp engine (SmolLM2-135M-Instruct) until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.EMBEDDED_ENGINE_HOST)
        parser.add_argument("--port", type=int, default=settings.EMBEDDED_ENGINE_PORT)
        parser.add_argument("--parallel", type=int, default=settings.EMBEDDED_ENGINE_PARALLEL)
        parser.add_argument(
            "--context", type=int, default=settings.EMBEDDED_ENGINE_CONTEXT, help="per slot"
        )
        parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 2, 4))
        parser.add_argument(
            "--verbosity-engine", type=int, default=0, help="llama.cpp log level (3 = per request)"
        )

    def handle(self, *args, host, port, parallel, context, threads, verbosity_engine, **options):
        # llama.cpp at verbosity 0 fails on a taken port with only "Failed to init server":
        # check first, so the message names the port.
        problem = port_in_use_message(
            host, port, what="the embedded engine's port", variable="EMBEDDED_ENGINE_PORT"
        )
        if problem:
            raise CommandError(problem)
        try:
            server = start_embedded_engine(
                host=host,
                port=port,
                parallel=parallel,
                context=context,
                threads=threads,
                verbosity=verbosity_engine,
            )
        except RuntimeError as exc:
            raise CommandError(
                f"llama.cpp could not start on {host}:{port}: {exc} "
                "(--verbosity-engine 3 shows llama.cpp's own log)"
            ) from exc
        self.stdout.write(f"Embedded engine listening on {server.listening_address}", ending="\n")
        self.stdout.flush()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        del server
