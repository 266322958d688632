"""The seed's "advanced example" with Yardstick's evaluations API: two models on a two-row Q&A
dataset, scored by exact match, then a leaderboard of the evaluation.

    export YARDSTICK_URL=http://127.0.0.1:8000
    export YARDSTICK_API_KEY=ys-...             # Settings -> API keys
    export YARDSTICK_PROJECT=demo/quickstart    # team/project: pays and keeps the results
    python docs/evaluations_example.py

Only `httpx` is needed (any HTTP client will do: it is plain JSON over the /v1 API).
"""

import os
import sys
import time

import httpx

BASE_URL = os.environ.get("YARDSTICK_URL", "http://127.0.0.1:8000").rstrip("/") + "/v1"
HEADERS = {
    "Authorization": f"Bearer {os.environ['YARDSTICK_API_KEY']}",
    "OpenAI-Project": os.environ["YARDSTICK_PROJECT"],
}
# The seed's two models when this server serves them, else the models it serves.
SEED_MODELS = ["meta-llama/Llama-3.1-8B-Instruct", "deepseek-ai/DeepSeek-V3-0324"]

dataset = [
    {"input": "What is 2 + 2?", "target": "4"},
    {"input": "Name a primary color.", "target": "red"},
]


def call(client: httpx.Client, method: str, path: str, **kwargs) -> dict:
    response = client.request(method, path, **kwargs)
    if response.is_error:
        error = response.json().get("error", {})
        sys.exit(f"{method} {path}: {response.status_code} {error.get('message')}")
    return response.json()


with httpx.Client(base_url=BASE_URL, headers=HEADERS, timeout=60) as client:
    served = [model["id"] for model in call(client, "GET", "/models")["data"]]
    models = [m for m in SEED_MODELS if m in served] + [m for m in served if m not in SEED_MODELS]
    if not models:
        sys.exit("This server serves no model yet.")
    params = {"temperature": 0, "max_tokens": 16}
    specs = [{"model": m, "params": params} for m in models[:2]]
    if len(specs) == 1:  # one model served (`make run`: SmolLM2): compare two temperatures
        specs.append({"model": models[0], "params": {**params, "temperature": 1}})

    # 1. The dataset: the same rows again are the same version.
    version = call(client, "POST", "/datasets", json={"name": "qa", "rows": dataset})
    print(f"Dataset {version['name']} v{version['version']}: {version['row_count']} rows")

    # 2. The evaluation: both models, exact match against the "target" column.
    evaluation = call(
        client,
        "POST",
        "/evaluations",
        json={
            "name": "QA",
            "dataset": version["id"],
            "models": specs,
            "scorers": [
                {"name": "exact_match", "scorer": "exact_match", "mapping": {"expected": "target"}}
            ],
            "system_prompt": "Answer with one word or one number, nothing else.",
            "budget": "0.10",  # dollars: the run stops before it would spend more
        },
    )
    print(
        f"Evaluation {evaluation['id']}: {evaluation['calls']} calls, "
        f"estimated ${evaluation['estimate']} (at most ${evaluation['worst_case']})"
    )

    # 3. Poll until it is over.
    deadline = time.monotonic() + 600
    while evaluation["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(1)
        evaluation = call(client, "GET", f"/evaluations/{evaluation['id']}")
        progress = evaluation["progress"]
        print(f"  {evaluation['status']}: {progress['done']}/{progress['total']} done")
    print(f"Evaluation {evaluation['status']}, spent ${evaluation['spent']}")

    for prediction in call(client, "GET", f"/evaluations/{evaluation['id']}/results")["data"]:
        score = prediction["scores"].get("exact_match", {}).get("score")
        print(
            f"  row {prediction['row']} {prediction['model']}: {prediction['output']!r} "
            f"score={score} cost=${prediction['cost']} latency={prediction['latency_ms']} ms"
        )

    # 4. The leaderboard (the team's): one column, the evaluation's exact_match mean.
    name = "Inference Leaderboard"
    existing = [b for b in call(client, "GET", "/leaderboards")["data"] if b["name"] == name]
    if existing:
        board = call(client, "GET", f"/leaderboards/{existing[0]['id']}")
    else:
        board = call(
            client,
            "POST",
            "/leaderboards",
            json={
                "name": name,
                "description": "Compare models on a QA dataset",
                "columns": [{"evaluation": "QA", "scorer": "exact_match", "metric": "mean"}],
            },
        )

print(f"\n{board['name']}: {board['description']}")
titles = [column["title"] for column in board["columns"]]
print(f"{'model':<40} " + "  ".join(titles))
for row in board["rows"]:
    cells = []
    for cell in row["cells"]:
        if cell is None or cell["value"] is None:
            cells.append("-")
        elif cell["low"] is None:
            cells.append(f"{cell['value']:.2f}")
        else:
            cells.append(f"{cell['value']:.2f} [{cell['low']:.2f}, {cell['high']:.2f}]")
    print(f"{row['model']:<40} " + "  ".join(cells))
