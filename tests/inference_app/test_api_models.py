"""GET /v1/models and /v1/models/{id}: callable models only, OpenAI's shape plus catalog fields."""

import pytest
from django.test import AsyncClient

from inference_app.models import CatalogModel, Deployment
from tests.inference_app.gateway_world import (
    TEXT_MODEL,
    TWO_DEPLOYMENTS_MODEL,
    UNDEPLOYED_MODEL,
    VISION_MODEL,
)


async def test_models_requires_a_valid_key(world, fake_engine):
    for headers in ({}, {"Authorization": "Bearer ys-nope-nope-nope-nope"}):
        response = await AsyncClient().get("/v1/models", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


async def test_models_lists_deployed_models_with_catalog_fields(world, fake_engine):
    await Deployment.objects.filter(name="two-first").aupdate(is_enabled=False)
    response = await AsyncClient().get("/v1/models", headers=world.headers())
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    # Deployed models only (the catalog seed's models have no deployment in this world);
    # one enabled deployment out of two is enough.
    assert set(ids) == {TEXT_MODEL, VISION_MODEL, TWO_DEPLOYMENTS_MODEL}
    assert UNDEPLOYED_MODEL not in ids
    text = next(m for m in body["data"] if m["id"] == TEXT_MODEL)
    assert text["object"] == "model"
    assert isinstance(text["created"], int) and text["owned_by"]
    assert text["context_window"] == 2048 and text["display_name"] == "text-model"
    assert text["pricing"]["input"] == "1" and text["pricing"]["output"] == "2"
    assert text["pricing"]["input_micros"] == 1_000_000
    assert text["modalities"]["input"] == ["text"]
    vision = next(m for m in body["data"] if m["id"] == VISION_MODEL)
    assert vision["modalities"]["input"] == ["text", "image"]


async def test_unlisted_or_fully_disabled_models_are_not_listed(world, fake_engine):
    await CatalogModel.objects.filter(model_id=VISION_MODEL).aupdate(is_listed=False)
    await Deployment.objects.filter(name="text-a").aupdate(is_enabled=False)
    response = await AsyncClient().get("/v1/models", headers=world.headers())
    assert [m["id"] for m in response.json()["data"]] == [TWO_DEPLOYMENTS_MODEL]


@pytest.mark.parametrize("model,status", [(TEXT_MODEL, 200), (UNDEPLOYED_MODEL, 404)])
async def test_model_detail(world, fake_engine, model, status):
    response = await AsyncClient().get(f"/v1/models/{model}", headers=world.headers())
    assert response.status_code == status
    if status == 200:
        assert response.json()["id"] == model
    else:
        assert response.json()["error"]["code"] == "model_not_found"
