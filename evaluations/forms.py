"""The pages' forms: a dataset upload, and the new evaluation form (models, scorers with their
arguments, trials, budget), read from POST into the shapes evaluations.services takes.

The new evaluation form's fields are named after what they set, so the page can draw any number
of models and scorers without a Django field per combination:
  model                 catalog ids chosen (checkboxes; up to MAX_MODELS)
  temperature, max_tokens               shared parameters
  temperature__<model>, max_tokens__<model>   a model's own (blank: the shared ones)
  scorer                scorer names chosen
  arg__<scorer>__<param>                a scorer's argument
  map__<scorer>__<input>                the column a scorer input is read from (blank: its name)
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms

from evaluations.scorers import SCORERS

MAX_MODELS = 6
MAX_TRIALS = 10
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_TOKENS = 256


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name")
    file = forms.FileField(label="File (JSONL or CSV)")

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the dataset a name.")
        return name

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
            )
        lower = upload.name.lower()
        if not lower.endswith((".jsonl", ".json", ".csv", ".ndjson")):
            raise forms.ValidationError("Upload a .jsonl or a .csv file.")
        return upload


class FromCallsForm(forms.Form):
    name = forms.CharField(max_length=100)
    span_ids = forms.CharField(help_text="Span ids, separated by commas or spaces")

    def clean_span_ids(self):
        ids = [part for part in self.cleaned_data["span_ids"].replace(",", " ").split() if part]
        if not ids:
            raise forms.ValidationError("Select at least one call.")
        if len(ids) > 1000:
            raise forms.ValidationError("At most 1,000 calls make one dataset.")
        return ids


def _number(text: str, *, field: str, errors: dict, integer: bool = False):
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        errors.setdefault(field, []).append(
            "Enter a whole number." if integer else "Enter a number."
        )
        return None
    if not integer and not math.isfinite(value):
        errors.setdefault(field, []).append("Enter a finite number.")
        return None
    return value


def _params(post, suffix: str, errors: dict, *, field_suffix: str = "") -> dict[str, Any]:
    params: dict[str, Any] = {}
    temperature = _number(
        post.get(f"temperature{suffix}", ""), field=f"temperature{field_suffix}", errors=errors
    )
    if temperature is not None:
        if not 0 <= temperature <= 2:
            errors.setdefault(f"temperature{field_suffix}", []).append(
                "Temperature is between 0 and 2."
            )
        params["temperature"] = temperature
    max_tokens = _number(
        post.get(f"max_tokens{suffix}", ""),
        field=f"max_tokens{field_suffix}",
        errors=errors,
        integer=True,
    )
    if max_tokens is not None:
        if max_tokens < 1:
            errors.setdefault(f"max_tokens{field_suffix}", []).append("Max tokens is at least 1.")
        params["max_tokens"] = max_tokens
    return params


def _scorer_arg(param, raw: str, *, scorer: str, errors: dict):
    """A form text as the value a scorer argument takes; None when left blank."""
    field = f"arg__{scorer}__{param.name}"
    if param.type == "bool":
        return raw in ("on", "true", "1")
    raw = (raw or "").strip()
    if raw == "":
        return None
    if param.type == "number":
        return _number(raw, field=field, errors=errors)
    if param.type == "str_list":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    if param.type == "json_schema":
        try:
            return json.loads(raw)
        except ValueError as exc:
            errors.setdefault(field, []).append(f"Not JSON: {exc}")
            return None
    return raw


def evaluation_form_read(post, *, model_ids: list[str], version_ids: list[int]) -> dict[str, Any]:
    """The form as {"name", "dataset_version_id", "model_specs", "scorers", "trials",
    "system_prompt", "budget_micros", "errors": {field: [messages]}}. Only the shape is checked
    here (numbers are numbers, the models and version are offered ones); evaluation_create
    checks the rest and its errors join these on the page."""
    errors: dict[str, list[str]] = {}
    name = (post.get("name") or "").strip()
    if not name:
        errors.setdefault("name", []).append("Give the evaluation a name.")
    elif len(name) > 100:
        errors.setdefault("name", []).append("At most 100 characters.")

    version_id = None
    try:
        version_id = int(post.get("dataset_version") or "")
    except ValueError:
        pass
    if version_id not in version_ids:
        errors.setdefault("dataset_version", []).append("Choose a dataset version.")
        version_id = None

    shared = _params(post, "", errors)
    chosen = [m for m in post.getlist("model") if m]
    unknown = [m for m in chosen if m not in model_ids]
    if unknown:
        errors.setdefault("model", []).append(f"Not an available model: {', '.join(unknown)}.")
    chosen = list(dict.fromkeys(m for m in chosen if m in model_ids))
    if not chosen:
        errors.setdefault("model", []).append("Choose at least one model.")
    elif len(chosen) > MAX_MODELS:
        errors.setdefault("model", []).append(f"Choose at most {MAX_MODELS} models.")
    model_specs = []
    for model in chosen:
        own = _params(post, f"__{model}", errors, field_suffix=f"__{model}")
        params = {"max_tokens": DEFAULT_MAX_TOKENS, **shared, **own}
        model_specs.append({"model": model, "params": params})

    scorers = []
    for scorer in dict.fromkeys(post.getlist("scorer")):
        spec = SCORERS.get(scorer)
        if spec is None:
            errors.setdefault("scorer", []).append(f"Unknown scorer {scorer!r}.")
            continue
        args: dict[str, Any] = {}
        for param in spec.args:
            value = _scorer_arg(
                param, post.get(f"arg__{scorer}__{param.name}", ""), scorer=scorer, errors=errors
            )
            if value is not None:
                args[param.name] = value
        mapping = {}
        for param in spec.inputs:
            column = (post.get(f"map__{scorer}__{param.name}") or "").strip()
            if column and column != param.name:
                mapping[param.name] = column
        scorers.append({"name": scorer, "scorer": scorer, "args": args, "mapping": mapping})
    if not scorers:
        errors.setdefault("scorer", []).append("Choose at least one scorer.")

    trials = _number(post.get("trials", "1"), field="trials", errors=errors, integer=True)
    if trials is None:
        trials = 1
    if not 1 <= trials <= MAX_TRIALS:
        errors.setdefault("trials", []).append(f"Trials are between 1 and {MAX_TRIALS}.")

    budget_micros = None
    budget_text = (post.get("budget") or "").strip().lstrip("$")
    if budget_text:
        try:
            budget = Decimal(budget_text)
        except InvalidOperation:
            budget = None
        if budget is None or not budget.is_finite() or budget <= 0:
            errors.setdefault("budget", []).append("A budget is an amount in dollars above 0.")
        else:
            budget_micros = int((budget * 1_000_000).to_integral_value())

    return {
        "name": name,
        "dataset_version_id": version_id,
        "model_specs": model_specs,
        "scorers": scorers,
        "trials": trials,
        "system_prompt": post.get("system_prompt") or "",
        "budget_micros": budget_micros,
        "errors": errors,
    }
