"""The traces core knows organizations, projects and users by id, like billing: only its page
layer may import the web app. Keeps `inference_app -> traces` one-way for the write path."""

import ast
from pathlib import Path

import pytest

TRACES = Path(__file__).resolve().parents[2] / "traces"
CORE_MODULES = [
    "models",
    "reports",
    "services",
    "cleaning",
    "w3c",
    "partitions",
    "otlp",
    "retention",
]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", CORE_MODULES)
def test_traces_core_does_not_import_the_web_app(module):
    path = TRACES / f"{module}.py"
    if not path.exists():
        pytest.skip(f"traces/{module}.py not written yet")
    imported = _imported_modules(path)
    offending = sorted(
        name
        for name in imported
        if name.split(".")[0] in {"inference_app", "playground", "billing"}
    )
    assert offending == [], f"traces/{module}.py imports {offending}"
