"""Each model's health, for the Inference cards and the Playground's picker, from its deployments.

A deployment is out when the gateway took it out of rotation (inference_app/gateway/routing.py:
it gave no answer, or failed for several organizations in a row). The gateway keeps that state
per process and writes it to the database (Deployment.is_healthy) for every other process to
read; the page reads both, so a deployment this process knows is out shows as out at once.

- available: every enabled deployment in rotation;
- degraded: some out, at least one in rotation (requests go to the others);
- down: all out: a request would get "The model `<id>` is unavailable right now.";
- "" (no health): no enabled deployment; the card says "no deployment" instead.
"""

from __future__ import annotations

from collections import defaultdict

from inference_app.gateway import routing
from inference_app.models import Deployment

AVAILABLE = "available"
DEGRADED = "degraded"
DOWN = "down"

LABELS = {AVAILABLE: "Available", DEGRADED: "Degraded", DOWN: "Down"}
EXPLANATIONS = {
    AVAILABLE: "Every deployment of this model answers.",
    DEGRADED: "Some deployments of this model are out of rotation; the others serve it.",
    DOWN: "No deployment of this model answers: it is unavailable right now.",
}


def health_of(in_rotation: list[bool]) -> str:
    if not in_rotation:
        return ""
    if all(in_rotation):
        return AVAILABLE
    if any(in_rotation):
        return DEGRADED
    return DOWN


def with_health(models: list) -> list:
    """Set `.health`, `.health_label`, `.health_note` and `.selectable` on each CatalogModel;
    returns the list."""
    states: dict[int, list[bool]] = defaultdict(list)
    rows = Deployment.objects.filter(model__in=[m.pk for m in models], is_enabled=True).values_list(
        "model_id", "name", "is_healthy"
    )
    for model_pk, name, is_healthy in rows:
        states[model_pk].append(bool(is_healthy) and routing.is_healthy(name))
    for model in models:
        model.health = health_of(states.get(model.pk, []))
        model.health_label = LABELS.get(model.health, "")
        model.health_note = EXPLANATIONS.get(model.health, "")
        # A card can be picked for Compare when some engine would take the request.
        model.selectable = model.health in (AVAILABLE, DEGRADED)
    return models
