# ruff: noqa: F811 (the gateway fixtures are imported, then named as test arguments)
"""Honest states: a model's card says what its deployments can do (available, degraded, down),
and a request to a model no engine answers is told "unavailable", not "overloaded".

The engine is the fake one (tests/inference_app/gateway_world.py); the gateway, its routing
(deployments taken out of rotation) and the pages are real.
"""

import asyncio
import re

import pytest
from django.test import AsyncClient

from inference_app.gateway import routing
from inference_app.models import Deployment
from playground.selectors import catalog_model_find, served_models
from tests.inference_app.gateway_world import (  # noqa: F401 (fixtures)
    HELLO,
    TEXT_MODEL,
    TWO_DEPLOYMENTS_MODEL,
    VISION_MODEL,
    fake_engine,
    post_chat,
    settlements_drained,
    world,
)


async def card_of(world, model_id: str) -> str:
    client = AsyncClient()
    await client.aforce_login(world.user)
    html = (await client.get("/inference/")).content.decode()
    start = html.index(f'data-model-id="{model_id}"')
    return html[html.rindex("<article", 0, start) : html.index("</article>", start)]


def badge(card: str) -> str:
    match = re.search(r'<span class="badge health[^"]*"[^>]*>([^<]*)</span>', card)
    assert match, card
    return match.group(1)


async def test_a_down_engine_is_unavailable_in_the_api_and_down_on_its_card(world, fake_engine):
    assert badge(await card_of(world, TEXT_MODEL)) == "Available"

    fake_engine.behaviour["engine-a.test"] = "refuse"
    for stream in (False, True):
        response = await post_chat(
            world, {"model": TEXT_MODEL, "messages": HELLO, "stream": stream}
        )
        assert response.status_code == 503
        assert response.json() == {
            "error": {
                "message": f"The model `{TEXT_MODEL}` is unavailable right now.",
                "type": "server_error",
                "param": None,
                "code": "model_unavailable",
            }
        }
    assert not routing.is_healthy("text-a")

    card = await card_of(world, TEXT_MODEL)
    assert badge(card) == "Down: unavailable right now"
    assert "Available" not in card and "Try in Playground" not in card
    # It cannot be picked for Compare, and the page says why when someone tries.
    assert 'class="model-card unavailable"' in card and 'aria-disabled="true"' in card
    assert "is unavailable right now: no deployment answers." in card


async def test_an_engine_answering_busy_is_still_overloaded(world, fake_engine):
    fake_engine.behaviour["engine-a.test"] = "http503"
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "engine_overloaded"
    assert badge(await card_of(world, TEXT_MODEL)) == "Available"  # busy is not down


async def test_one_deployment_out_of_two_is_degraded_and_still_selectable(world, fake_engine):
    fake_engine.behaviour["engine-1.test"] = "refuse"
    response = await post_chat(world, {"model": TWO_DEPLOYMENTS_MODEL, "messages": HELLO})
    assert response.status_code == 200  # the other deployment answered
    assert not routing.is_healthy("two-first") and routing.is_healthy("two-second")

    card = await card_of(world, TWO_DEPLOYMENTS_MODEL)
    assert badge(card) == "Degraded"
    assert "unavailable" not in card.split(">")[0] and "Try in Playground" in card
    assert badge(await card_of(world, VISION_MODEL)) == "Available"


@pytest.mark.django_db(transaction=True)
def test_a_deployment_another_process_took_out_shows_on_the_card_and_in_the_picker(
    world, fake_engine
):
    # Another gateway process took it out and wrote so; this process has not tried it.
    Deployment.objects.filter(name="vision-a").update(is_healthy=False)
    Deployment.objects.filter(name="two-first").update(is_healthy=False)
    health = {m.model_id: m.health for m in served_models()}
    assert health[VISION_MODEL] == "down"
    assert health[TWO_DEPLOYMENTS_MODEL] == "degraded"
    assert health[TEXT_MODEL] == "available"
    # The model page reads the same health.
    assert catalog_model_find(model_id=VISION_MODEL).health == "down"

    from django.test import Client

    client = Client()
    client.force_login(world.user)
    html = client.get("/inference/").content.decode()
    vision = html.split(f'data-model-id="{VISION_MODEL}"')[1].split("</article>")[0]
    assert "Down: unavailable right now" in vision

    # The Playground's picker says it in words too.
    picker = client.get("/playground/").content.decode()
    assert re.search(
        rf'<option value="{VISION_MODEL}" data-health="down">[^<]*\(down\)</option>',
        picker,
    )
    assert re.search(
        rf'<option value="{TWO_DEPLOYMENTS_MODEL}" data-health="degraded">[^<]*\(degraded\)</option>',
        picker,
    )
    assert re.search(
        rf'<option value="{TEXT_MODEL}" data-health="available">text-model</option>', picker
    )


async def test_a_deployment_recorded_down_by_a_dead_process_is_recorded_back_once_it_answers(
    world, fake_engine
):
    # The process that took it out died before its probe brought it back: the column stays
    # false, and the cards would say "Down" for good.
    await Deployment.objects.filter(name="text-a").aupdate(is_healthy=False)
    routing.clear_caches()
    assert badge(await card_of(world, TEXT_MODEL)) == "Down: unavailable right now"

    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert response.status_code == 200
    for _ in range(50):
        if (await Deployment.objects.aget(name="text-a")).is_healthy:
            break
        await asyncio.sleep(0.05)
    assert (await Deployment.objects.aget(name="text-a")).is_healthy
    assert badge(await card_of(world, TEXT_MODEL)) == "Available"
