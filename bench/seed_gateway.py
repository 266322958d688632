"""Prepare a fresh gateway database for the benchmark and print what the load generator needs.

    DATABASE_URL=sqlite:////tmp/bench.sqlite3 .venv/bin/python -m bench.seed_gateway \\
        --engine-url http://127.0.0.1:18301/v1

Migrates, then uses the project's own services to create an Enterprise organization with plenty
of credits, a user, team `bench`, project `load` (concurrency limits far above any scenario),
an API key, a web session (for the compare websocket) and one deployment per catalog model, all
pointing at the fake engine. Prints one JSON line: api_key, project, session_key, models.
"""

import argparse
import json
import os


def seed(engine_url: str) -> dict:
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)

    from billing.credits import grant_credits
    from billing.models import Membership, Plan
    from billing.organizations import membership_set, organization_create
    from inference_app.accounts import (
        api_key_create,
        default_project_set,
        profile_get,
        project_create,
        team_add_member,
        team_create,
    )
    from inference_app.catalog import sync_catalog
    from inference_app.models import CatalogModel, Deployment

    sync_catalog()
    org = organization_create(name="Bench", slug="bench", plan_code=Plan.Code.ENTERPRISE)
    # Enough for every scenario's worst-case reservations many times over.
    grant_credits(organization=org, amount_micros=10**12, kind="purchase", note="benchmark")
    user = get_user_model().objects.create_user(username="bench", password="bench-password")
    membership_set(organization=org, user=user, role=Membership.Role.ADMIN)
    team = team_create(organization=org, name="bench")
    team_add_member(team=team, user=user)
    project = project_create(team=team, name="load", concurrency_limit=100_000)
    default_project_set(user=user, project=project)
    profile = profile_get(user=user)
    profile.concurrency_limit = 100_000
    profile.save(update_fields=["concurrency_limit"])
    _, raw_key = api_key_create(user=user, name="bench")

    Deployment.objects.all().update(is_enabled=False)
    models = []
    for model in CatalogModel.objects.all():
        Deployment.objects.create(
            model=model, name=f"bench-{model.pk}", base_url=engine_url, upstream_model=""
        )
        models.append(model.model_id)

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return {
        "api_key": raw_key,
        "project": project.path,
        "session_key": session.session_key,
        "models": models,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine-url", required=True, help="the fake engine, up to /v1")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_app.settings")
    import django

    django.setup()
    print(json.dumps(seed(args.engine_url)))


if __name__ == "__main__":
    main()
