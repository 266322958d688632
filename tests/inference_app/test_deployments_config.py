import pytest
from django.core.management import CommandError, call_command

from inference_app.models import Deployment

pytestmark = pytest.mark.django_db

GOOD = """
[[deployment]]
name = "llama-a"
model = "meta-llama/Llama-3.1-8B-Instruct"
base_url = "http://127.0.0.1:9001/v1/"
weight = 2

[[deployment]]
name = "phi"
model = "microsoft/Phi-4-mini-instruct"
base_url = "http://127.0.0.1:9002/v1"
upstream_model = "phi4-mini"
api_key_env = "TEST_PHI_KEY"
"""


def test_load_deployments_creates_then_updates(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_PHI_KEY", "sk-upstream")
    path = tmp_path / "d.toml"
    path.write_text(GOOD)
    call_command("load_deployments", str(path))
    llama = Deployment.objects.get(name="llama-a")
    assert llama.base_url == "http://127.0.0.1:9001/v1" and llama.weight == 2
    phi = Deployment.objects.get(name="phi")
    assert phi.engine_model_name == "phi4-mini" and phi.upstream_api_key == "sk-upstream"

    path.write_text(GOOD.replace("weight = 2", "weight = 5"))
    call_command("load_deployments", str(path))
    assert Deployment.objects.get(name="llama-a").weight == 5
    assert Deployment.objects.filter(name__in=["llama-a", "phi"]).count() == 2


@pytest.mark.parametrize(
    "bad, message",
    [
        (GOOD.replace("meta-llama/Llama-3.1-8B-Instruct", "nope/unknown"), "unknown catalog model"),
        (GOOD.replace("http://127.0.0.1:9002/v1", "ftp://x"), "not an http"),
        (GOOD.replace('name = "phi"', 'name = "llama-a"'), "unique"),
        (GOOD + "\nbogus = 1\n", "bogus"),
        ("[[deployment]\n", "d.toml"),
    ],
)
def test_bad_file_changes_nothing(tmp_path, monkeypatch, bad, message):
    monkeypatch.setenv("TEST_PHI_KEY", "k")
    path = tmp_path / "d.toml"
    path.write_text(bad)
    before = Deployment.objects.count()
    with pytest.raises(CommandError, match=message):
        call_command("load_deployments", str(path))
    assert Deployment.objects.count() == before


def test_missing_key_variable_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_PHI_KEY", raising=False)
    path = tmp_path / "d.toml"
    path.write_text(GOOD)
    with pytest.raises(CommandError, match="TEST_PHI_KEY"):
        call_command("load_deployments", str(path))
    assert not Deployment.objects.filter(name="llama-a").exists()
