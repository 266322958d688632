"""Writes to the model catalog and its deployments."""

from django.conf import settings
from django.db import transaction

from inference_app.catalog_seed import CATALOG, EMBEDDED_MODEL_ID
from inference_app.models import CatalogModel, Deployment

EMBEDDED_DEPLOYMENT_NAME = "embedded-llamacpp"


def sync_catalog() -> None:
    """Create or refresh the seed's models. Idempotent; operator-added models are left alone."""
    with transaction.atomic():
        for entry in CATALOG:
            CatalogModel.objects.update_or_create(
                model_id=entry["model_id"], defaults={k: v for k, v in entry.items()}
            )


def ensure_embedded_deployment() -> Deployment:
    """The deployment that points SmolLM2 at the embedded llama.cpp engine."""
    sync_catalog()
    model = CatalogModel.objects.get(model_id=EMBEDDED_MODEL_ID)
    deployment, _ = Deployment.objects.update_or_create(
        name=EMBEDDED_DEPLOYMENT_NAME,
        defaults={
            "model": model,
            "base_url": settings.EMBEDDED_ENGINE_URL,
            "upstream_model": EMBEDDED_MODEL_ID,
        },
    )
    return deployment
