"""Playground and Compare sessions: writes and reads.

A session stores its layout only (system prompt, parameters, each pane's model); its messages
are its calls' bodies. Restoring a pane = its last call's request messages plus that call's
answer. Like the rest of traces, projects and users are known by id; callers pass the project
ids the user may read (anything outside them is "not found").
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

from django.db.models import Sum

from traces.cleaning import clean_json, clean_text
from traces.models import Call, CallBody, Session
from traces.reports import new_trace_id
from traces.selectors import call_detail

TITLE_CHARS = 80
# Call.pane's size: a pane id is stored the same way in the layout and on its calls.
PANE_CHARS = Call._meta.get_field("pane").max_length
MAX_PANES = 6
# The request parameters a session remembers (what the Playground's controls can set).
PARAMS = ("temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty", "seed")


def pane_key(pane: str) -> str:
    return pane[:PANE_CHARS]


def new_session_id() -> str:
    return secrets.token_hex(16)


# ---- writes ------------------------------------------------------------------------------------


def title_from_messages(messages) -> str:
    """The first user message's text on one line, shortened; what the history panel shows."""
    for message in messages or []:
        if isinstance(message, dict) and message.get("role") == "user":
            text = " ".join(_text_of(message.get("content")).split())
            if not text:
                return "Image"
            if len(text) > TITLE_CHARS:
                text = text[: TITLE_CHARS - 1].rstrip() + "…"
            return clean_text(text)
    return "Untitled"


def session_create(
    *, organization_id: int, project_id: int, user_id: int, kind: str, title: str
) -> Session:
    if kind not in Session.Kind.values:
        kind = Session.Kind.CHAT
    return Session.objects.create(
        id=new_session_id(),
        organization_id=organization_id,
        project_id=project_id,
        user_id=user_id,
        kind=kind,
        title=clean_text(title, TITLE_CHARS),
        trace_id=new_trace_id(),
        layout={"system_prompt": "", "params": {}, "panes": []},
    )


def session_layout_update(
    *,
    session: Session,
    pane: str,
    model: str,
    params: dict,
    system_prompt: str,
    pane_order: Iterable[str] | None = None,
) -> Session:
    """Remember what a run used: its pane's model and parameters, and the shared system prompt.

    `pane_order` (Compare) lists the panes the page has now, in order: panes removed from the
    page leave the layout. A Playground chat has one pane, whose parameters are the session's.
    """
    layout = session.layout if isinstance(session.layout, dict) else {}
    panes = [p for p in layout.get("panes") or [] if isinstance(p, dict)]
    entry = {"pane": pane_key(pane), "model": clean_text(model, 200), "params": _params(params)}
    by_id = {p.get("pane"): p for p in panes}
    by_id[entry["pane"]] = {**by_id.get(entry["pane"], {}), **entry}
    if pane_order is not None:
        order = [pane_key(p) for p in pane_order if isinstance(p, str)]
        if entry["pane"] not in order:
            order.append(entry["pane"])
    else:
        order = [p.get("pane") for p in panes]
        if entry["pane"] not in order:
            order.append(entry["pane"])
    session.layout = {
        **layout,
        "system_prompt": clean_text(system_prompt or ""),
        "params": entry["params"],
        "panes": [by_id[p] for p in dict.fromkeys(order) if p in by_id][:MAX_PANES],
    }
    session.save(update_fields=["layout", "updated_at"])
    return session


def session_copy(
    *,
    restored: dict,
    user_id: int,
    organization_id: int,
    project_id: int,
    store_bodies: bool = True,
) -> Session:
    """A new session for `user_id` in their project, with the layout of `restored` (what
    session_restore returned) and its messages kept in the layout until the copy's own runs
    replace them. Without bodies in the target project, only the layout is copied."""
    panes = []
    for pane in restored["panes"]:
        entry = {"pane": pane["pane"], "model": pane["model"], "params": pane["params"]}
        if store_bodies and pane["messages"]:
            entry["messages"] = clean_json(pane["messages"])
        panes.append(entry)
    return Session.objects.create(
        id=new_session_id(),
        organization_id=organization_id,
        project_id=project_id,
        user_id=user_id,
        kind=restored["kind"],
        title=restored["title"],
        trace_id=new_trace_id(),
        layout={
            "system_prompt": restored["system_prompt"],
            "params": restored["params"],
            "panes": panes,
        },
        copied_from=restored["id"],
    )


# ---- reads -------------------------------------------------------------------------------------


def session_get(*, project_ids: Iterable[int], session_id) -> Session | None:
    """The session if it is in one of `project_ids` (None: unknown, or not the caller's to see)."""
    if not isinstance(session_id, str) or not session_id:
        return None
    return Session.objects.filter(id=session_id, project_id__in=list(project_ids)).first()


def session_for_run(*, session_id, user_id: int, project_id: int) -> Session | None:
    """The user's own session in this project, which a run may write to; None otherwise."""
    if not isinstance(session_id, str) or not session_id:
        return None
    return Session.objects.filter(id=session_id, user_id=user_id, project_id=project_id).first()


def session_restore(*, project_ids: Iterable[int], session_id) -> dict | None:
    """Everything to show the session again, or None when it is not readable here:

    {id, kind, title, user_id, project_id, created_at, updated_at, copied_from, system_prompt,
     params, panes: [{pane, model, params, messages}], bodies_missing}

    A pane's messages are its last call's request messages (system messages left out: the
    system prompt is shown apart) and that call's answer. `bodies_missing`: a pane ran but its
    last call has no stored body (the project keeps metadata only), so only its layout is back.
    """
    session = session_get(project_ids=project_ids, session_id=session_id)
    if session is None:
        return None
    return _restored(session)


def _restored(session: Session) -> dict:
    layout = session.layout if isinstance(session.layout, dict) else {}
    system_prompt = layout.get("system_prompt") or ""
    panes, bodies_missing = [], False
    for entry in layout.get("panes") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("pane"), str):
            continue
        messages = _pane_messages(session, entry["pane"])
        if messages is None:
            bodies_missing = True
            messages = []
        elif messages is False:
            seeded = entry.get("messages")
            messages = seeded if isinstance(seeded, list) else []
        if not system_prompt:
            system_prompt = _system_prompt_of(messages)
        panes.append(
            {
                "pane": entry["pane"],
                "model": entry.get("model") or "",
                "params": entry.get("params") if isinstance(entry.get("params"), dict) else {},
                "messages": [m for m in messages if m.get("role") != "system"],
            }
        )
    return {
        "id": session.id,
        "kind": session.kind,
        "title": session.title,
        "user_id": session.user_id,
        "project_id": session.project_id,
        "organization_id": session.organization_id,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "copied_from": session.copied_from,
        "system_prompt": system_prompt,
        "params": layout.get("params") if isinstance(layout.get("params"), dict) else {},
        "panes": panes,
        "bodies_missing": bodies_missing,
    }


def _pane_messages(session: Session, pane: str):
    """The pane's conversation from its last call: a list; None when that call has no body;
    False when the pane has no call yet."""
    call = (
        Call.objects.filter(project_id=session.project_id, session_id=session.id, pane=pane)
        .order_by("-started_at", "-span_id")
        .only("started_at", "project_id", "span_id", "has_body")
        .first()
    )
    if call is None:
        return False
    body = _body_of(call) if call.has_body else None
    if body is None:
        return None
    return conversation_of(body.inputs, body.output)


def _body_of(call: Call) -> CallBody | None:
    return CallBody.objects.filter(
        started_at=call.started_at, project_id=call.project_id, span_id=call.span_id
    ).first()


def conversation_of(inputs, output) -> list[dict]:
    """A call's request messages and, when there is one, its answer as the last message."""
    messages = []
    raw = inputs.get("messages") if isinstance(inputs, dict) else None
    for message in raw if isinstance(raw, list) else []:
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "user",
            "assistant",
        ):
            continue
        content = _restored_content(message.get("content"))
        if message["role"] != "user":
            content = _text_of(content)
        messages.append({"role": message["role"], "content": content})
    answer = output.get("content") if isinstance(output, dict) else None
    if isinstance(answer, str) and answer:
        messages.append({"role": "assistant", "content": answer})
    return messages


def _restored_content(content):
    """Text, or content parts the page can show and send again: an inline image is stored
    without its data (cleaning.clean_json leaves a note), so it comes back as that note."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            url = (
                (part.get("image_url") or {}).get("url")
                if isinstance(part.get("image_url"), dict)
                else None
            )
            if isinstance(url, str) and url.startswith(("data:", "https://", "http://")):
                parts.append({"type": "image_url", "image_url": {"url": url}})
            else:
                note = url if isinstance(url, str) and url.startswith("[") else "[image]"
                parts.append({"type": "text", "text": note})
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _system_prompt_of(messages: list[dict]) -> str:
    for message in messages:
        if message.get("role") == "system":
            return _text_of(message.get("content"))
    return ""


def sessions_recent(*, user_id: int, project_id: int, limit: int = 30) -> list[dict]:
    """The user's latest sessions in the project, newest first: id, kind, title, models,
    updated_at and cost (the sum of their calls' charges; None before any call is written)."""
    sessions = list(
        Session.objects.filter(project_id=project_id, user_id=user_id).order_by(
            "-updated_at", "-id"
        )[:limit]
    )
    costs = dict(
        Call.objects.filter(project_id=project_id, session_id__in=[s.id for s in sessions])
        .values("session_id")
        .annotate(cost=Sum("cost_micros"))
        .values_list("session_id", "cost")
    )
    rows = []
    for session in sessions:
        layout = session.layout if isinstance(session.layout, dict) else {}
        models = [p.get("model") for p in layout.get("panes") or [] if isinstance(p, dict)]
        rows.append(
            {
                "id": session.id,
                "kind": session.kind,
                "title": session.title or "Untitled",
                "models": list(dict.fromkeys(m for m in models if m)),
                "updated_at": session.updated_at,
                "cost_micros": costs.get(session.id),
            }
        )
    return rows


def call_for_playground(*, project_ids: Iterable[int], span_id) -> dict | None:
    """A call's request, as the Playground loads it ("Open in Playground"): {span_id, model,
    system_prompt, params, messages (the answer last), bodies_missing}, or None when the call
    is not readable here."""
    if not isinstance(span_id, str) or not span_id:
        return None
    call = call_detail(project_ids=list(project_ids), span_id=span_id)
    if call is None:
        return None
    body = call.body
    inputs = body.inputs if body is not None and isinstance(body.inputs, dict) else {}
    messages = conversation_of(inputs, body.output if body is not None else {})
    return {
        "span_id": call.span_id,
        "model": call.model or str(inputs.get("model") or ""),
        "system_prompt": _system_prompt_of(messages),
        "params": _params(inputs),
        "messages": [m for m in messages if m["role"] != "system"],
        "bodies_missing": body is None,
    }


# ---- exports -----------------------------------------------------------------------------------


def session_export_json(restored: dict) -> str:
    data = {
        "id": restored["id"],
        "kind": restored["kind"],
        "title": restored["title"],
        "created_at": restored["created_at"].isoformat(),
        "updated_at": restored["updated_at"].isoformat(),
        "copied_from": restored["copied_from"] or None,
        "system_prompt": restored["system_prompt"],
        "params": restored["params"],
        "panes": restored["panes"],
        "bodies_missing": restored["bodies_missing"],
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


def session_export_markdown(restored: dict) -> str:
    lines = [f"# {restored['title'] or 'Untitled'}", ""]
    kind = "Compare" if restored["kind"] == Session.Kind.COMPARE else "Chat"
    lines += [f"{kind} · {restored['created_at']:%Y-%m-%d %H:%M} UTC", ""]
    if restored["bodies_missing"]:
        lines += ["_This project does not store request and response bodies._", ""]
    if restored["system_prompt"]:
        lines += ["**System prompt**", "", _quoted(restored["system_prompt"]), ""]
    for number, pane in enumerate(restored["panes"], start=1):
        heading = pane["model"] or "(no model)"
        if len(restored["panes"]) > 1:
            heading = f"Pane {number}: {heading}"
        lines += [f"## {heading}", ""]
        if pane["params"]:
            settings = ", ".join(f"{k}={v}" for k, v in pane["params"].items())
            lines += [f"_{settings}_", ""]
        for message in pane["messages"]:
            role = "User" if message["role"] == "user" else "Assistant"
            lines += [f"### {role}", "", _text_of(message["content"]), ""]
    return "\n".join(lines).rstrip() + "\n"


# ---- helpers -----------------------------------------------------------------------------------


def _params(source) -> dict:
    if not isinstance(source, dict):
        return {}
    params = {}
    for name in PARAMS:
        value = source.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            params[name] = value
    stop = source.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list):
        stop = [clean_text(s, 200) for s in stop if isinstance(s, str) and s][:4]
        if stop:
            params["stop"] = stop
    return params


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        ]
        return "\n".join(str(p) for p in parts)
    return ""


def _quoted(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines())
