"""Deployments from a TOML file, so a cluster can be configured without clicking.

    [[deployment]]
    name = "llama-8b-a"                      # unique; the row is created or updated by name
    model = "meta-llama/Llama-3.1-8B-Instruct"  # a catalog model id
    base_url = "http://10.0.0.5:8000/v1"      # the engine's OpenAI-compatible base URL
    upstream_model = "meta-llama/Llama-3.1-8B-Instruct"   # optional: the engine's own name
    api_key_env = "VLLM_KEY"                  # optional: read the engine's key from this variable
    weight = 2                                # optional, default 1
    enabled = true                            # optional, default true

Every field is checked before anything is written: a bad file changes nothing.
"""

import os
import tomllib
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from pydantic import BaseModel, ConfigDict, Field, field_validator

from inference_app.models import CatalogModel, Deployment


class DeploymentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    model: str
    base_url: str
    upstream_model: str = ""
    api_key_env: str = ""
    weight: int = Field(default=1, ge=0)
    enabled: bool = True

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            URLValidator(schemes=["http", "https"])(value)
        except ValidationError as exc:
            raise ValueError(f"not an http(s) URL: {value!r}") from exc
        return value.rstrip("/")


class DeploymentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: list[DeploymentSpec] = []


class DeploymentConfigError(Exception):
    pass


def parse_deployments_file(path: Path) -> list[DeploymentSpec]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DeploymentConfigError(f"{path}: {exc}") from exc
    try:
        specs = DeploymentsFile.model_validate(data).deployment
    except ValueError as exc:
        raise DeploymentConfigError(f"{path}: {exc}") from exc
    names = [spec.name for spec in specs]
    if len(names) != len(set(names)):
        raise DeploymentConfigError(f"{path}: deployment names must be unique")
    return specs


def deployments_apply(specs: list[DeploymentSpec]) -> list[Deployment]:
    """Create or update each deployment by name, all or nothing."""
    known = dict(CatalogModel.objects.values_list("model_id", "pk"))
    unknown = sorted({spec.model for spec in specs} - known.keys())
    if unknown:
        raise DeploymentConfigError(f"unknown catalog model(s): {', '.join(unknown)}")
    missing_env = [
        s.api_key_env for s in specs if s.api_key_env and s.api_key_env not in os.environ
    ]
    if missing_env:
        raise DeploymentConfigError(f"environment variable(s) not set: {', '.join(missing_env)}")
    applied = []
    with transaction.atomic():
        for spec in specs:
            deployment, _ = Deployment.objects.update_or_create(
                name=spec.name,
                defaults={
                    "model_id": known[spec.model],
                    "base_url": spec.base_url,
                    "upstream_model": spec.upstream_model,
                    "upstream_api_key": os.environ.get(spec.api_key_env, "")
                    if spec.api_key_env
                    else "",
                    "weight": spec.weight,
                    "is_enabled": spec.enabled,
                },
            )
            applied.append(deployment)
    return applied
