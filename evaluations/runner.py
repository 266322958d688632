"""One prediction of an evaluation, through the gateway: claimed, budgeted, called, scored.

`prediction_run` is what a Celery task does (evaluations/tasks.py). Every prediction and judge
call goes through `start_chat_completion` as the evaluation's creator in its project, with
source "evaluation": it is admitted, held, billed and traced like any other call, and counts
against the same concurrency slots.

Exactly once, without a lock held over the call:
- Claim: a prediction is taken by one UPDATE (pending, or running with an expired claim) that
  adds one to its attempts. A second task for it finds it claimed or finished and returns.
- Idempotency: a try's gateway request id is `eval-{evaluation}-{prediction}-{attempt}`. Before
  calling, a try looks for an earlier try's answered call (its usage row, status ok, and the
  answer in the call's trace body): if there is one it is used, not called (and billed) again.
- Budget: before calling, the try's worst case (the prompt estimate and max_tokens at the
  catalog prices, plus its judge calls' worst case) is committed on the evaluation by one
  conditional UPDATE. When it would pass the budget: if other calls' worst cases are held, the
  prediction waits for them to finish (they give back what they did not spend); if none are,
  the run stops (budget_exceeded) instead.
  `prediction.request_id` is set with the commitment, in one transaction: a try that takes over
  a dead one finds the commitment still held and keeps it, so it is neither lost nor doubled.
- Finish: the prediction is written done only if this try still holds it (its attempt number),
  with the ledger's cost of its request ids; the same transaction moves that cost from the
  evaluation's committed to its spent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from billing.models import UsageRecord
from billing.usage import usage_cost_micros
from evaluations import runs, scorers
from evaluations.models import DatasetRow, Evaluation, Prediction
from inference_app.gateway import errors, resolve_session_caller, start_chat_completion
from inference_app.gateway.errors import GatewayError
from inference_app.gateway.pipeline import DEFAULT_MAX_TOKENS
from inference_app.gateway.tokens import estimate_prompt_tokens
from inference_app.models import CatalogModel
from traces.models import Call, CallBody
from traces.reports import TraceContext

log = logging.getLogger(__name__)

# What prediction_run did, for the task.
DONE = "done"
ERROR = "error"
SKIPPED = "skipped"
# The concurrency slots were full, or the budget is held by calls in flight: released, to be
# retried later.
BUSY = "busy"
NOT_CLAIMED = "not_claimed"  # another worker has it, or it is finished
FAILED = "failed"  # the evaluation failed (quota, access)
WAIT = "wait"  # (internal) the budget is held by calls in flight

JUDGE_MAX_TOKENS = 256
# Tries that died (claimed, never finished) before a prediction is given up as an error; tries
# released for concurrency or budget do not count.
MAX_ATTEMPTS = 5
# Concurrency slots of the user and of the project an evaluation leaves to them.
DEFAULT_FREE_SLOTS = 1
# Request parameters that are the runner's, not the model spec's.
_RESERVED_PARAMS = {"model", "messages", "stream", "stream_options"}
# Gateway refusals that no other prediction would escape: the run stops as failed.
_FATAL_CODES = {"insufficient_quota", "invalid_api_key", "permission_denied"}
_CONCURRENCY_CODE = errors.concurrency_limit_reached().code


def request_id_for(evaluation_id: int, prediction_id: int, attempt: int) -> str:
    return f"eval-{evaluation_id}-{prediction_id}-{attempt}"


def judge_request_id_for(
    evaluation_id: int, prediction_id: int, attempt: int, scorer_index: int
) -> str:
    return f"{request_id_for(evaluation_id, prediction_id, attempt)}-judge-{scorer_index}"


@dataclasses.dataclass
class Answer:
    request_id: str
    content: str
    finish_reason: str
    usage: UsageRecord | None


class _Release(Exception):
    """The gateway refused for concurrency: give the prediction back and retry later."""


class _Fatal(Exception):
    """The evaluation cannot go on (quota exhausted, access gone)."""


# --- the body and its worst case ----------------------------------------------------------------


def _user_message(row: dict) -> list[dict]:
    messages = row.get("messages")
    if isinstance(messages, list) and messages:
        return [dict(m) for m in messages]
    value = row.get("input", "")
    content = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return [{"role": "user", "content": content}]


def prediction_body(evaluation: Evaluation, prediction: Prediction, row: dict) -> dict:
    spec = evaluation.model_specs[prediction.model_index]
    params = {k: v for k, v in (spec.get("params") or {}).items() if k not in _RESERVED_PARAMS}
    messages = _user_message(row)
    if evaluation.system_prompt and messages[0].get("role") != "system":
        messages.insert(0, {"role": "system", "content": evaluation.system_prompt})
    return {**params, "model": prediction.model, "messages": messages, "stream": False}


def _prices(model_id: str) -> dict | None:
    return (
        CatalogModel.objects.filter(model_id=model_id)
        .values("input_price_micros", "output_price_micros", "context_window")
        .first()
    )


def _call_worst_case(body: dict) -> tuple[int, int]:
    """(worst-case cost, max completion tokens) of one call, as the gateway bounds it."""
    prices = _prices(body["model"])
    if prices is None:
        return 0, 0  # the gateway refuses it (model_not_found): it costs nothing
    prompt = estimate_prompt_tokens(body, image_tokens=0)
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    room = max(prices["context_window"] - prompt, 0)
    max_tokens = requested if isinstance(requested, int) and requested > 0 else None
    max_tokens = max_tokens or min(room, DEFAULT_MAX_TOKENS)
    n = body.get("n") if isinstance(body.get("n"), int) and body.get("n") > 0 else 1
    cost = usage_cost_micros(
        prompt_tokens=prompt,
        completion_tokens=max_tokens * n,
        input_price_micros=prices["input_price_micros"],
        output_price_micros=prices["output_price_micros"],
    )
    return cost, max_tokens * n


def _judges(evaluation: Evaluation) -> list[tuple[int, dict]]:
    return [(i, s) for i, s in enumerate(evaluation.scorers) if s.get("scorer") == "llm_judge"]


def _judge_model(entry: dict) -> str:
    args = entry.get("args") or {}
    return args.get("model") or args.get("judge_model") or ""


def _row_vars(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "messages"}


def _judge_body(entry: dict, row: dict, output: str) -> dict:
    args = entry.get("args") or {}
    return {
        "model": _judge_model(entry),
        "messages": scorers.judge_messages(args.get("rubric", ""), _row_vars(row), output),
        "max_tokens": JUDGE_MAX_TOKENS,
        "temperature": 0,
        "stream": False,
    }


def worst_case_micros(evaluation: Evaluation, prediction: Prediction, row: dict) -> int:
    """The most this prediction can cost: its call, and each judge call with the longest
    answer the call may give (counted twice over, since the answer's tokens are estimated
    again as the judge's prompt)."""
    cost, completion_tokens = _call_worst_case(prediction_body(evaluation, prediction, row))
    for _, entry in _judges(evaluation):
        body = _judge_body(entry, row, "")
        prices = _prices(body["model"])
        if prices is None:
            continue
        prompt = estimate_prompt_tokens(body, image_tokens=0) + 2 * completion_tokens
        cost += usage_cost_micros(
            prompt_tokens=prompt,
            completion_tokens=JUDGE_MAX_TOKENS,
            input_price_micros=prices["input_price_micros"],
            output_price_micros=prices["output_price_micros"],
        )
    return cost


# --- the gateway call ---------------------------------------------------------------------------


def _leaving_room(caller):
    """The caller with its concurrency limits lowered by EVALUATION_FREE_SLOTS (never below
    one): the gateway's own atomic slot count then keeps that many slots of the user and of
    the project free for their panes and API calls while an evaluation runs."""
    free = int(getattr(settings, "EVALUATION_FREE_SLOTS", DEFAULT_FREE_SLOTS))
    return dataclasses.replace(
        caller,
        user_concurrency=max(caller.user_concurrency - free, 1),
        project_concurrency=max(caller.project_concurrency - free, 1),
    )


async def _gateway_call(
    user, project_path: str, body: dict, request_id: str, trace, keep_claim
) -> dict:
    caller = _leaving_room(await resolve_session_caller(user, project_path, source="evaluation"))
    # A long answer must not outlive the claim: another worker would take the prediction over
    # and call again while this call is still running. (A plain answer arrives whole, so most
    # of the wait is inside start_chat_completion.)
    keeper = asyncio.ensure_future(_keep_claim(keep_claim))
    try:
        call = await start_chat_completion(caller, body, request_id=request_id, trace=trace)
        try:
            return await call.result()
        finally:
            # The usage row (and its traced call) exist once this returns: the cost read next
            # is the ledger's.
            await call.wait_settled()
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)


async def _keep_claim(extend) -> None:
    period = runs.claim_seconds() / 3
    while True:
        await asyncio.sleep(period)
        try:
            # On the task's own thread (async_to_sync's caller), its connection.
            await sync_to_async(extend)()
        except Exception:
            log.warning("could not extend an evaluation claim", exc_info=True)


def _extender(prediction: Prediction):
    def extend() -> None:
        _mine(prediction).update(
            claimed_until=timezone.now() + timedelta(seconds=runs.claim_seconds())
        )

    return extend


def _call(
    evaluation: Evaluation, prediction: Prediction, user, body: dict, request_id: str, pane: str
) -> Answer:
    """One call through the gateway; GatewayError sorted into release, fatal, or raised."""
    trace = TraceContext(
        trace_id=evaluation.trace_id,
        session_id=f"eval-{evaluation.pk}"[:32],
        pane=pane[:16],
    )
    project_path = f"{evaluation.team}/{evaluation.project}"
    try:
        completion = async_to_sync(_gateway_call)(
            user, project_path, body, request_id, trace, _extender(prediction)
        )
    except GatewayError as exc:
        if exc.code == _CONCURRENCY_CODE:
            raise _Release() from None
        if exc.code in _FATAL_CODES:
            raise _Fatal(exc.message) from None
        raise
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    return Answer(
        request_id=request_id,
        content=message.get("content") or "",
        finish_reason=choice.get("finish_reason") or "",
        usage=UsageRecord.objects.filter(request_id=request_id).first(),
    )


def _answered(evaluation: Evaluation, request_ids: list[str]) -> Answer | None:
    """An earlier try's answered call among `request_ids`, from its usage row and its traced
    body; None when there is none (or its body was not kept: it cannot be reused)."""
    for usage in UsageRecord.objects.filter(
        request_id__in=request_ids, status=UsageRecord.Status.OK
    ).order_by("-created_at"):
        call = (
            Call.objects.filter(request_id=usage.request_id, project_id=evaluation.project_id)
            .values("started_at", "project_id", "span_id")
            .first()
        )
        if call is None:
            continue
        output = CallBody.objects.filter(**call).values_list("output", flat=True).first()
        if isinstance(output, dict) and isinstance(output.get("content"), str):
            return Answer(
                request_id=usage.request_id,
                content=output["content"],
                finish_reason=output.get("finish_reason") or "",
                usage=usage,
            )
    return None


# --- the run of one prediction ------------------------------------------------------------------


def _claim(prediction_id: int) -> bool:
    now = timezone.now()
    return bool(
        Prediction.objects.filter(pk=prediction_id)
        .filter(
            Q(status=Prediction.Status.PENDING)
            | Q(status=Prediction.Status.RUNNING, claimed_until__lt=now)
        )
        .update(
            status=Prediction.Status.RUNNING,
            claimed_until=now + timedelta(seconds=runs.claim_seconds()),
            attempts=F("attempts") + 1,
        )
    )


def _mine(prediction: Prediction):
    """This try's hold on its prediction: the row as long as no other try took it over."""
    return Prediction.objects.filter(
        pk=prediction.pk, attempts=prediction.attempts, status=Prediction.Status.RUNNING
    )


def _skip_open(evaluation_id: int) -> None:
    """A stopped run: what has not started will not."""
    Prediction.objects.filter(evaluation_id=evaluation_id, status=Prediction.Status.PENDING).update(
        status=Prediction.Status.SKIPPED, claimed_until=None
    )


def _skip(prediction: Prediction, worst_case: int | None) -> str:
    with transaction.atomic():
        if _mine(prediction).update(
            status=Prediction.Status.SKIPPED, claimed_until=None, request_id=""
        ):
            if prediction.request_id and worst_case:
                Evaluation.objects.filter(pk=prediction.evaluation_id).update(
                    committed_micros=F("committed_micros") - worst_case
                )
        _skip_open(prediction.evaluation_id)
    runs.evaluation_finish_if_done(prediction.evaluation_id)
    return SKIPPED


def _stop(evaluation_id: int, status: str, error: str = "") -> None:
    Evaluation.objects.filter(pk=evaluation_id, status=Evaluation.Status.RUNNING).update(
        status=status, error=error[:500]
    )


def _commit_budget(prediction: Prediction, worst_case: int, request_id: str) -> str | None:
    """Commit this try's worst case on the evaluation, unless the try it takes over did (and
    it is still held). None when committed; else the evaluation's status that stops it."""
    if prediction.request_id:
        return None  # a dead try's commitment, still held: it is this try's now
    with transaction.atomic():
        fits = Q(budget_micros__isnull=True) | Q(
            budget_micros__gte=F("spent_micros") + F("committed_micros") + worst_case
        )
        committed = (
            Evaluation.objects.filter(pk=prediction.evaluation_id, status=Evaluation.Status.RUNNING)
            .filter(fits)
            .update(committed_micros=F("committed_micros") + worst_case)
        )
        if committed:
            if not _mine(prediction).update(request_id=request_id):
                transaction.set_rollback(True)
                return Evaluation.Status.RUNNING  # taken over meanwhile: leave it
            prediction.request_id = request_id
            return None
    status, in_flight = Evaluation.objects.filter(pk=prediction.evaluation_id).values_list(
        "status", "committed_micros"
    )[0]
    if status != Evaluation.Status.RUNNING:
        return status
    if in_flight > 0:
        # Other calls' worst cases are held; they cost less, as a rule, and give the rest
        # back when they finish: wait for them rather than stop a run with money left.
        return WAIT
    _stop(prediction.evaluation_id, Evaluation.Status.BUDGET_EXCEEDED)
    return Evaluation.Status.BUDGET_EXCEEDED


def _release(prediction: Prediction, worst_case: int) -> str:
    """Back to pending as if this try never was (its request id is used again next time: a
    refused call left no usage row), its commitment returned."""
    with transaction.atomic():
        if _mine(prediction).update(
            status=Prediction.Status.PENDING,
            claimed_until=None,
            request_id="",
            attempts=F("attempts") - 1,
        ):
            if prediction.request_id:
                Evaluation.objects.filter(pk=prediction.evaluation_id).update(
                    committed_micros=F("committed_micros") - worst_case
                )
    return BUSY


def _cost(request_ids: list[str]) -> int:
    return (
        UsageRecord.objects.filter(request_id__in=request_ids).aggregate(c=Sum("cost_micros"))["c"]
        or 0
    )


def _all_request_ids(prediction: Prediction, judge_indexes: list[int]) -> list[str]:
    ids = []
    for attempt in range(1, prediction.attempts + 1):
        ids.append(request_id_for(prediction.evaluation_id, prediction.pk, attempt))
        ids += [
            judge_request_id_for(prediction.evaluation_id, prediction.pk, attempt, i)
            for i in judge_indexes
        ]
    return ids


def _finish(prediction: Prediction, worst_case: int, judge_indexes: list[int], **fields) -> None:
    """Write the outcome if this try still holds the prediction, and move its cost (the
    ledger's, over every try's request ids) from committed to spent, in one transaction."""
    with transaction.atomic():
        cost = _cost(_all_request_ids(prediction, judge_indexes))
        if _mine(prediction).update(claimed_until=None, cost_micros=cost, **fields):
            held = worst_case if prediction.request_id else 0
            Evaluation.objects.filter(pk=prediction.evaluation_id).update(
                spent_micros=F("spent_micros") + cost,
                committed_micros=F("committed_micros") - held,
            )
    runs.evaluation_finish_if_done(prediction.evaluation_id)


def _score(evaluation, prediction, user, row, output, attempt) -> dict:
    """Every scorer's verdict; a judge is a second gateway call (may raise _Release/_Fatal)."""
    results = {}
    for index, entry in enumerate(evaluation.scorers):
        name = entry.get("name") or entry.get("scorer")
        try:
            if entry.get("scorer") == "llm_judge":
                request_id = judge_request_id_for(evaluation.pk, prediction.pk, attempt, index)
                pane = f"{prediction.row_index}.{prediction.model_index}.{prediction.trial}.j"
                earlier = [
                    judge_request_id_for(evaluation.pk, prediction.pk, k, index)
                    for k in range(1, attempt + 1)
                ]
                try:
                    # A dead try's judge answer too is used, not asked (and paid) again.
                    answer = _answered(evaluation, earlier)
                    if answer is None:
                        body = _judge_body(entry, row, output)
                        answer = _call(evaluation, prediction, user, body, request_id, pane)
                except GatewayError as exc:
                    results[name] = {
                        "score": 0.0,
                        "passed": False,
                        "reason": f"the judge call failed: {exc.message}"[:500],
                    }
                    continue
                threshold = (entry.get("args") or {}).get("threshold", 0.5)
                verdict = scorers.judge_parse(answer.content, threshold=threshold)
            else:
                verdict = scorers.score(
                    entry.get("scorer"),
                    entry.get("args"),
                    entry.get("mapping"),
                    output=output,
                    row=row,
                )
        except (ValueError, TypeError, KeyError) as exc:
            results[name] = {"score": 0.0, "passed": False, "reason": str(exc)[:500]}
            continue
        results[name] = verdict.as_dict()
    return results


def prediction_run(prediction_id: int) -> str:
    """Run one prediction (see the module docstring); returns what happened (DONE, ERROR,
    SKIPPED, BUSY, NOT_CLAIMED, FAILED)."""
    if not _claim(prediction_id):
        return NOT_CLAIMED
    prediction = Prediction.objects.select_related("evaluation").get(pk=prediction_id)
    evaluation = prediction.evaluation
    attempt = prediction.attempts
    if evaluation.status == Evaluation.Status.QUEUED:
        # Not started: give it back untouched (start queues it again).
        _mine(prediction).update(
            status=Prediction.Status.PENDING, claimed_until=None, attempts=F("attempts") - 1
        )
        return NOT_CLAIMED
    row = (
        DatasetRow.objects.filter(
            version_id=evaluation.dataset_version_id, index=prediction.row_index
        )
        .values_list("data", flat=True)
        .first()
    ) or {}
    worst_case = worst_case_micros(evaluation, prediction, row)
    if evaluation.status != Evaluation.Status.RUNNING:
        return _skip(prediction, worst_case)
    judge_indexes = [i for i, _ in _judges(evaluation)]
    if attempt > MAX_ATTEMPTS:
        # Every try died (a crash this prediction causes, say): the run goes on without it.
        message = f"Gave up after {MAX_ATTEMPTS} tries that never finished."
        _finish(
            prediction, worst_case, judge_indexes, status=Prediction.Status.ERROR, error=message
        )
        return ERROR

    request_id = request_id_for(evaluation.pk, prediction.pk, attempt)
    stopped = _commit_budget(prediction, worst_case, request_id)
    if stopped == Evaluation.Status.RUNNING:
        return NOT_CLAIMED
    if stopped == WAIT:
        return _release(prediction, worst_case)
    if stopped is not None:
        return _skip(prediction, None)

    user = get_user_model().objects.filter(pk=evaluation.created_by_id).first()
    pane = f"{prediction.row_index}.{prediction.model_index}.{prediction.trial}"
    started = time.monotonic()
    try:
        earlier = [request_id_for(evaluation.pk, prediction.pk, k) for k in range(1, attempt + 1)]
        answer = _answered(evaluation, earlier)
        if answer is None:
            if user is None:
                raise _Fatal("The evaluation's creator no longer exists.")
            body = prediction_body(evaluation, prediction, row)
            answer = _call(evaluation, prediction, user, body, request_id, pane)
        scores = _score(evaluation, prediction, user, row, answer.content, attempt)
    except _Release:
        return _release(prediction, worst_case)
    except _Fatal as exc:
        _stop(evaluation.pk, Evaluation.Status.FAILED, str(exc))
        _skip_open(evaluation.pk)
        _finish(
            prediction,
            worst_case,
            judge_indexes,
            status=Prediction.Status.ERROR,
            error=str(exc)[:500],
        )
        return FAILED
    except GatewayError as exc:
        _finish(
            prediction,
            worst_case,
            judge_indexes,
            status=Prediction.Status.ERROR,
            error=exc.message[:500],
            request_id=request_id,
        )
        return ERROR
    usage = answer.usage
    _finish(
        prediction,
        worst_case,
        judge_indexes,
        status=Prediction.Status.DONE,
        request_id=answer.request_id,
        output=answer.content,
        finish_reason=answer.finish_reason[:32],
        scores=scores,
        error="",
        latency_ms=usage.duration_ms if usage else int((time.monotonic() - started) * 1000),
        ttft_ms=usage.time_to_first_token_ms if usage else None,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
    )
    return DONE
