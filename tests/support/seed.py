"""Seed a live stack's database through the product's own services; run as a subprocess.

    python -m tests.support.seed < spec.json      (prints {"api_keys": {label: raw key}})

It runs in its own process, with the stack's environment (DATABASE_URL...), because the test
process has its own Django settings (pytest-django's test database) and must not share them.
Every entry is created if missing, so a module can seed more rows later in the same database.

Spec (all lists optional):
    {"embedded_deployment": true,
     "organizations": [{"slug", "plan": "free", "balance_micros": null}],
     "users": [{"username", "organization", "role": "member", "concurrency_limit": null}],
     "teams": [{"name", "organization", "members": [usernames]}],
     "projects": [{"team", "name", "concurrency_limit": null, "default_for": [usernames]}],
     "models": [{"model_id", "context_window": 8192, "modality": "text"}],   (operator-added)
     "deployments": [{"name", "model", "base_url", "upstream_model": ""}],
     "api_keys": [{"label", "user", "revoked": false}]}
"""

import json
import os
import sys


def seed(spec: dict) -> dict:
    from django.contrib.auth import get_user_model

    from billing.credits import balance_adjust
    from billing.models import Organization
    from billing.organizations import membership_set, organization_create
    from inference_app.accounts import (
        api_key_create,
        api_key_revoke,
        default_project_set,
        profile_get,
        project_create,
        team_add_member,
        team_create,
    )
    from inference_app.catalog import ensure_embedded_deployment, sync_catalog
    from inference_app.models import CatalogModel, Deployment, Project, Team

    sync_catalog()
    if spec.get("embedded_deployment"):
        ensure_embedded_deployment()
    for entry in spec.get("organizations", []):
        org = Organization.objects.filter(slug=entry["slug"]).first() or organization_create(
            name=entry["slug"].title(), slug=entry["slug"], plan_code=entry.get("plan", "free")
        )
        if entry.get("balance_micros") is not None:
            # e.g. an organization whose credits are spent: the quota error's precondition.
            org.refresh_from_db()
            change = entry["balance_micros"] - org.balance_micros
            if change:
                balance_adjust(organization=org, amount_micros=change, note="live test set-up")
    users = get_user_model().objects
    for entry in spec.get("users", []):
        user = users.filter(username=entry["username"]).first() or users.create_user(
            username=entry["username"], password=entry.get("password", "live-test-password")
        )
        org = Organization.objects.get(slug=entry["organization"])
        membership_set(organization=org, user=user, role=entry.get("role", "member"))
        if entry.get("concurrency_limit") is not None:
            profile = profile_get(user=user)
            profile.concurrency_limit = entry["concurrency_limit"]
            profile.save(update_fields=["concurrency_limit"])
    for entry in spec.get("teams", []):
        team = Team.objects.filter(name=entry["name"]).first() or team_create(
            organization=Organization.objects.get(slug=entry["organization"]), name=entry["name"]
        )
        for username in entry.get("members", []):
            team_add_member(team=team, user=users.get(username=username))
    for entry in spec.get("projects", []):
        team = Team.objects.get(name=entry["team"])
        project = Project.objects.filter(team=team, name=entry["name"]).first() or project_create(
            team=team, name=entry["name"], concurrency_limit=entry.get("concurrency_limit")
        )
        for username in entry.get("default_for", []):
            default_project_set(user=users.get(username=username), project=project)
    for entry in spec.get("models", []):
        CatalogModel.objects.get_or_create(
            model_id=entry["model_id"],
            defaults={
                "display_name": entry["model_id"].split("/")[-1],
                "modality": entry.get("modality", "text"),
                "context_window": entry.get("context_window", 8192),
                "total_params_b": 1,
                "description": "Added by a live test.",
                "input_price_micros": 100_000,
                "output_price_micros": 200_000,
            },
        )
    for entry in spec.get("deployments", []):
        Deployment.objects.update_or_create(
            name=entry["name"],
            defaults={
                "model": CatalogModel.objects.get(model_id=entry["model"]),
                "base_url": entry["base_url"],
                "upstream_model": entry.get("upstream_model", ""),
                "is_enabled": True,
                "is_healthy": True,
            },
        )
    api_keys = {}
    for entry in spec.get("api_keys", []):
        api_key, raw_key = api_key_create(
            user=users.get(username=entry["user"]), name=entry["label"]
        )
        if entry.get("revoked"):
            api_key_revoke(api_key=api_key)
        api_keys[entry["label"]] = raw_key
    return {"api_keys": api_keys}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_app.settings")
    import django

    django.setup()
    spec = json.load(sys.stdin)
    json.dump(seed(spec), sys.stdout)


if __name__ == "__main__":
    main()
