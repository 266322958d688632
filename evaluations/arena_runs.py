"""A blind arena pane's run on the Playground socket (playground/consumers.py calls this).

The page of a blind battle never learns which model is behind a pane before the vote: its run
message names the match and the pane's index ({"arena": {"match": "<id>", "pane": 0}}), not a
model. This module finds the model on the server (for the match's voter only) and filters what
goes back: no cost (a price tells models apart) and no model id or name in an error message.

A page layer like the consumer: it may use the gateway's errors and the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F

from evaluations.models import ArenaMatch
from inference_app.gateway import GatewayError, errors
from inference_app.models import CatalogModel

# Event fields a blind pane never gets: the price of what it produced.
HIDDEN_FIELDS = ("cost_micros",)


def _no_battle() -> GatewayError:
    return GatewayError(
        status=404,
        message="No such battle: start a new one from the Arena page.",
        type="invalid_request_error",
        code="not_found",
        param="arena",
    )


@dataclass(frozen=True)
class BlindPane:
    match_id: str
    index: int
    model: str
    params: dict
    # The model's id and catalog name: scrubbed from error messages.
    names: tuple[str, ...]

    def scrub(self, event: dict) -> dict:
        event = {k: v for k, v in event.items() if k not in HIDDEN_FIELDS}
        if event.get("code") == "model_not_found":
            event["message"] = "This model is not available right now: start a new battle."
        elif event.get("type") == "error" and isinstance(event.get("message"), str):
            message = event["message"]
            for name in self.names:
                message = message.replace(name, "this model")
            event["message"] = message
        return event

    def wrap(self, emit):
        async def blind_emit(event: dict) -> None:
            await emit(self.scrub(event))

        return blind_emit


def blind_pane(*, arena, voter_id: int) -> BlindPane:
    """The model behind pane `arena["pane"]` of the voter's open match; a GatewayError (404 for
    a match that is not theirs or does not exist, 400 otherwise) when there is none."""
    if not isinstance(arena, dict):
        raise errors.invalid_request('"arena" names a match and a pane.', param="arena")
    match_id, index = arena.get("match"), arena.get("pane")
    if not isinstance(match_id, str) or not 0 < len(match_id) <= 32:
        raise _no_battle()
    if isinstance(index, bool) or not isinstance(index, int):
        raise errors.invalid_request("A blind pane is named by its index.", param="arena")
    from evaluations.arena_selectors import match_for_voter

    match = match_for_voter(match_id=match_id, voter_id=voter_id)
    if match is None:
        raise _no_battle()
    if match.voted_at is not None:
        raise errors.invalid_request(
            "This battle has been voted on: start a new one.", param="arena"
        )
    if not 0 <= index < len(match.pane_models):
        raise errors.invalid_request("This battle has no such pane.", param="arena")
    if index == 0:
        # The server's count of the prompts sent (pane A gets every one): a vote needs one, so
        # nobody votes on a battle they never saw, and the vote's turn count is not the page's.
        ArenaMatch.objects.filter(pk=match.pk, voted_at__isnull=True).update(turns=F("turns") + 1)
    model = match.pane_models[index]
    name = (
        CatalogModel.objects.filter(model_id=model).values_list("display_name", flat=True).first()
    )
    names = tuple(n for n in (model, name, model.rsplit("/", 1)[-1]) if n)
    return BlindPane(
        match_id=match.id, index=index, model=model, params=dict(match.params or {}), names=names
    )
