import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from inference_app.accounts import api_key_create, api_key_revoke
from inference_app.models import ApiKey, CatalogModel, Deployment, Project

pytestmark = pytest.mark.django_db


def test_api_key_is_stored_only_as_hash():
    user = get_user_model().objects.create_user("alice")
    api_key, raw = api_key_create(user=user, name="laptop")
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert raw.startswith("ys-")
    assert raw not in (stored.key_hash, stored.prefix)
    assert raw.startswith(stored.prefix)
    assert stored.matches(raw)
    assert not stored.matches(raw + "x")


def test_revoked_key_is_inactive():
    user = get_user_model().objects.create_user("bob")
    api_key, _ = api_key_create(user=user)
    api_key_revoke(api_key=api_key)
    api_key.refresh_from_db()
    assert not api_key.is_active


def test_catalog_has_the_seed_models_and_smollm2():
    ids = set(CatalogModel.objects.values_list("model_id", flat=True))
    assert {
        "deepseek-ai/DeepSeek-R1-0528",
        "deepseek-ai/DeepSeek-V3-0324",
        "meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.3-70B-Instruct",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        "microsoft/Phi-4-mini-instruct",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    } <= ids
    scout = CatalogModel.objects.get(model_id="meta-llama/Llama-4-Scout-17B-16E-Instruct")
    assert scout.supports_vision and scout.context_window == 64_000


def test_bootstrap_demo_is_idempotent(capsys):
    call_command("bootstrap_demo")
    call_command("bootstrap_demo")
    assert "demo" in capsys.readouterr().out
    assert get_user_model().objects.filter(username="demo").count() == 1
    assert Project.objects.filter(team__name="demo", name="quickstart").count() == 1
    assert Deployment.objects.filter(name="embedded-llamacpp").count() == 1
    user = get_user_model().objects.get(username="demo")
    assert user.profile.default_project.path == "demo/quickstart"
    assert user.org_memberships.get().organization.balance_micros > 0


def test_create_api_key_prints_only_the_key(capsys):
    call_command("bootstrap_demo")
    capsys.readouterr()
    call_command("create_api_key", "demo")
    out = capsys.readouterr().out.strip()
    assert out.startswith("ys-") and "\n" not in out
    assert ApiKey.objects.get(prefix=out[:12]).matches(out)
