"""Leaderboards: columns validated against the team's evaluations, cells computed from the
latest finished run's predictions (with intervals), best per column respecting minimize, and
the pages readable only by the team and its organization's admins."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from billing.organizations import membership_set, organization_create
from evaluations import leaderboards, selectors, stats
from evaluations.leaderboards import LeaderboardInvalid, leaderboard_create, leaderboard_table
from evaluations.models import Dataset, DatasetVersion, Evaluation, Prediction
from inference_app.accounts import team_add_member
from inference_app.models import Project, Team

pytestmark = pytest.mark.django_db

EXACT = {"name": "exact_match", "scorer": "exact_match", "args": {}, "mapping": {}}
MODELS = [{"model": "m/cheap", "params": {}}, {"model": "m/dear", "params": {}}]


class Tenant:
    def __init__(self, label: str):
        suffix = uuid.uuid4().hex[:6]
        self.org = organization_create(name=label, slug=f"{label}-{suffix}")
        self.user = get_user_model().objects.create_user(f"{label}-{suffix}", password="pw-1234567")
        membership_set(organization=self.org, user=self.user, role="member")
        self.team = Team.objects.create(organization=self.org, name=f"{label}-team-{suffix}")
        team_add_member(team=self.team, user=self.user)
        self.project = Project.objects.create(team=self.team, name="main")
        dataset = Dataset.objects.create(
            organization_id=self.org.pk, project_id=self.project.pk, name="qa"
        )
        self.version = DatasetVersion.objects.create(
            dataset=dataset, number=1, content_hash=uuid.uuid4().hex, row_count=4
        )

    def run(self, name="QA", status=Evaluation.Status.COMPLETED, results=None, when=None):
        """An evaluation run with predictions: results[model_index] = list per row of
        (score, cost_micros, latency_ms) or a list of trials of them."""
        evaluation = Evaluation.objects.create(
            organization_id=self.org.pk,
            team_id=self.team.pk,
            project_id=self.project.pk,
            team=self.team.name,
            project=self.project.name,
            created_by_id=self.user.pk,
            name=name,
            dataset_version=self.version,
            scorers=[EXACT],
            model_specs=MODELS,
            status=status,
            trace_id=uuid.uuid4().hex,
        )
        if when is not None:
            Evaluation.objects.filter(pk=evaluation.pk).update(created_at=when)
            evaluation.refresh_from_db()
        for model_index, per_row in (results or {}).items():
            for row_index, item in enumerate(per_row):
                trials = item if isinstance(item, list) else [item]
                for trial, (score, cost, latency) in enumerate(trials):
                    Prediction.objects.create(
                        evaluation=evaluation,
                        row_index=row_index,
                        model_index=model_index,
                        trial=trial,
                        model=MODELS[model_index]["model"],
                        status=Prediction.Status.DONE,
                        scores={
                            "exact_match": {"score": score, "passed": score >= 1, "reason": ""}
                        },
                        cost_micros=cost,
                        latency_ms=latency,
                    )
        return evaluation

    def board(self, columns=None, **fields):
        return leaderboard_create(
            organization_id=self.org.pk,
            team_id=self.team.pk,
            team=self.team.name,
            user_id=self.user.pk,
            name=fields.get("name", "Board"),
            description="",
            columns=columns
            if columns is not None
            else [
                {"evaluation": "QA", "scorer": "exact_match", "metric": "mean", "minimize": False}
            ],
        )


@pytest.fixture
def tenant():
    return Tenant("acme")


CHEAP = [(1.0, 100, 50), (0.0, 100, 60), (1.0, 100, 70), (1.0, 100, 80)]
DEAR = [(1.0, 900, 200), (1.0, 900, 220), (1.0, 900, 240), (1.0, 900, 260)]


def test_create_validates_columns_and_writes_nothing_on_error(tenant):
    tenant.run(results={0: CHEAP, 1: DEAR})
    bad = [
        {"evaluation": "Nope", "scorer": "exact_match", "metric": "mean"},
        {"evaluation": "QA", "scorer": "contains", "metric": "mean"},
        {"evaluation": "QA", "scorer": "exact_match", "metric": "median"},
        {"evaluation": "QA", "scorer": "exact_match", "metric": "mean", "minimize": "yes"},
        "not a column",
    ]
    with pytest.raises(LeaderboardInvalid) as caught:
        leaderboard_create(
            organization_id=tenant.org.pk,
            team_id=tenant.team.pk,
            team=tenant.team.name,
            user_id=tenant.user.pk,
            name="",
            columns=bad,
        )
    errors = caught.value.errors
    assert errors["name"] == ["a leaderboard needs a name"]
    text = " | ".join(errors["columns"])
    assert "column 1: no evaluation named 'Nope'" in text
    assert "column 2: evaluation 'QA' has no scorer 'contains' (scorers: exact_match)" in text
    assert "column 3: metric must be one of" in text
    assert "column 4: minimize must be true or false" in text
    assert "column 5: must be an object" in text
    assert len(errors["columns"]) == 5
    with pytest.raises(LeaderboardInvalid) as caught:
        tenant.board(columns=[])
    assert caught.value.errors["columns"] == ["add at least one column"]
    assert not leaderboards.Leaderboard.objects.exists()
    # Cost and latency need no scorer, and are minimized unless told otherwise.
    board = tenant.board(
        columns=[
            {"evaluation": "QA", "metric": "cost_per_item"},
            {"evaluation": "QA", "scorer": "x", "metric": "latency_p50"},
        ]
    )
    assert board.columns == [
        {"evaluation": "QA", "scorer": "", "metric": "cost_per_item", "minimize": True},
        {"evaluation": "QA", "scorer": "", "metric": "latency_p50", "minimize": True},
    ]
    with pytest.raises(LeaderboardInvalid) as caught:
        tenant.board()  # the same name again
    assert "already has a leaderboard named 'Board'" in caught.value.errors["name"][0]


def test_an_evaluation_of_another_team_is_not_a_column(tenant):
    other = Tenant("other")
    other.run(results={0: CHEAP})
    with pytest.raises(LeaderboardInvalid) as caught:
        tenant.board()
    assert "no evaluation named 'QA' in this team" in caught.value.errors["columns"][0]


def test_table_values_intervals_best_and_chart(tenant):
    tenant.run(results={0: CHEAP, 1: DEAR})
    board = tenant.board(
        columns=[
            {"evaluation": "QA", "scorer": "exact_match", "metric": "mean"},
            {"evaluation": "QA", "scorer": "exact_match", "metric": "pass_rate"},
            {"evaluation": "QA", "metric": "cost_per_item"},
            {"evaluation": "QA", "metric": "latency_p50"},
        ]
    )
    table = leaderboard_table(board)
    assert [row["model"] for row in table["rows"]] == ["m/dear", "m/cheap"]
    dear, cheap = table["rows"]
    expected = stats.mean_ci([1.0, 0.0, 1.0, 1.0], seed=selectors.BOOTSTRAP_SEED)
    assert cheap["cells"][0] == {
        "value": 0.75,
        "low": expected.low,
        "high": expected.high,
        "n": 4,
    }
    assert expected.low < 0.75 < expected.high <= 1.0
    # A constant sample: zero-width interval, as the data says.
    assert dear["cells"][0] == {"value": 1.0, "low": 1.0, "high": 1.0, "n": 4}
    # The pass rate has its interval too (every item here passes or fails as it scores).
    assert cheap["cells"][1] == cheap["cells"][0]
    assert cheap["cells"][2]["value"] == 100 and dear["cells"][2]["value"] == 900
    assert cheap["cells"][3] == {"value": 65.0, "low": None, "high": None, "n": 4}
    assert dear["cells"][3]["value"] == 230.0
    # Best per column: higher is better for scores, lower for cost and latency.
    assert [c["best"] for c in table["columns"]] == ["m/dear", "m/dear", "m/cheap", "m/cheap"]
    assert table["columns"][0]["title"] == "QA · exact_match · Mean score"
    # The cheap model's interval overlaps the best one's (1.0): it is good enough.
    assert table["good_enough_model"] == "m/cheap"
    points = {p["model"]: p for p in table["chart"]}
    assert points["m/cheap"]["cost_per_item_micros"] == 100
    assert points["m/dear"]["latency_p50_ms"] == 230.0
    assert points["m/cheap"]["good_enough"] and not points["m/dear"]["good_enough"]


def test_good_enough_is_the_best_when_the_cheap_one_is_clearly_worse(tenant):
    rows = 30
    worse = [(0.0, 10, 5)] * rows
    better = [(1.0, 50, 5)] * rows
    tenant.run(results={0: worse, 1: better})
    table = leaderboard_table(tenant.board())
    assert table["good_enough_model"] == "m/dear"


def test_trials_are_folded_per_item(tenant):
    # Item 0: trials 1 and 0 -> 0.5; item 1: 1 and 1 -> 1.0. The interval is over 2 items.
    tenant.run(results={0: [[(1.0, 1, 1), (0.0, 1, 1)], [(1.0, 1, 1), (1.0, 1, 1)]]})
    cell = leaderboard_table(tenant.board())["rows"][0]["cells"][0]
    assert cell["value"] == 0.75 and cell["n"] == 2


def test_minimize_sorts_and_marks_the_lowest(tenant):
    tenant.run(results={0: CHEAP, 1: DEAR})
    board = tenant.board(
        columns=[{"evaluation": "QA", "scorer": "exact_match", "metric": "mean", "minimize": True}]
    )
    table = leaderboard_table(board)
    assert table["columns"][0]["best"] == "m/cheap"
    assert [row["model"] for row in table["rows"]] == ["m/cheap", "m/dear"]


def test_the_latest_finished_run_wins_and_the_board_follows_new_runs(tenant):
    now = timezone.now()
    tenant.run(results={0: CHEAP, 1: DEAR}, when=now - timedelta(hours=3))
    board = tenant.board()
    first = leaderboard_table(board)
    assert first["rows"][1]["cells"][0]["value"] == 0.75
    # A newer run that is still running, failed or cancelled is not read.
    for status in (
        Evaluation.Status.RUNNING,
        Evaluation.Status.FAILED,
        Evaluation.Status.CANCELLED,
    ):
        tenant.run(status=status, results={0: [(0.0, 1, 1)] * 4}, when=now - timedelta(hours=2))
    # A budget stop without any result is not read either.
    tenant.run(status=Evaluation.Status.BUDGET_EXCEEDED, when=now - timedelta(hours=1))
    assert leaderboard_table(board)["columns"][0]["run"]["id"] == first["columns"][0]["run"]["id"]
    # A new completed run: the same leaderboard now shows it.
    newer = tenant.run(results={0: [(1.0, 1, 1)] * 4, 1: [(0.0, 1, 1)] * 4}, when=now)
    table = leaderboard_table(board)
    assert table["columns"][0]["run"]["id"] == newer.pk
    assert [(r["model"], r["cells"][0]["value"]) for r in table["rows"]] == [
        ("m/cheap", 1.0),
        ("m/dear", 0.0),
    ]
    # A budget-stopped run with results is newer still: it is read.
    stopped = tenant.run(
        status=Evaluation.Status.BUDGET_EXCEEDED,
        results={0: [(0.0, 1, 1)]},
        when=now + timedelta(minutes=1),
    )
    table = leaderboard_table(board)
    assert table["columns"][0]["run"] == {
        "id": stopped.pk,
        "status": "budget_exceeded",
        "created_at": stopped.created_at.isoformat().replace("+00:00", "Z"),
    }
    assert [r["model"] for r in table["rows"]] == ["m/cheap", "m/dear"]
    assert table["rows"][1]["cells"][0] is None  # no result for this model in that run


def test_update_revalidates(tenant):
    tenant.run(results={0: CHEAP})
    board = tenant.board()
    with pytest.raises(LeaderboardInvalid):
        leaderboards.leaderboard_update(board, columns=[{"evaluation": "gone", "metric": "mean"}])
    board.refresh_from_db()
    assert board.columns[0]["evaluation"] == "QA"
    leaderboards.leaderboard_update(board, name="Renamed", description="why")
    board.refresh_from_db()
    assert (board.name, board.description) == ("Renamed", "why")


# --- Pages ---------------------------------------------------------------------------------------


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_detail_page_shows_intervals_best_and_good_enough(tenant):
    tenant.run(results={0: CHEAP, 1: DEAR})
    board = tenant.board(
        columns=[
            {"evaluation": "QA", "scorer": "exact_match", "metric": "mean"},
            {"evaluation": "QA", "metric": "cost_per_item"},
        ]
    )
    response = _client(tenant.user).get(f"/leaderboards/{board.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    table = leaderboard_table(board)
    low, high = table["rows"][1]["cells"][0]["low"], table["rows"][1]["cells"][0]["high"]
    assert f"0.75 [{low:.2f}, {high:.2f}]" in html
    assert "1.00 [1.00, 1.00]" in html
    assert 'data-sort="100">$0.0001</td>' in html and ">$0.0009</td>" in html
    assert 'class="num best"' in html
    assert "good enough" in html and 'id="lb-chart-data"' in html
    assert "chart.umd.min.js" in html


def test_list_page_creates_a_leaderboard_and_shows_errors(tenant):
    tenant.run(results={0: CHEAP})
    client = _client(tenant.user)
    page = client.get("/leaderboards/")
    assert page.status_code == 200 and "No leaderboards yet" in page.content.decode()
    bad = client.post(
        "/leaderboards/",
        {"team": tenant.team.pk, "name": "B", "evaluation_0": "QA", "scorer_0": "nope"},
    )
    assert bad.status_code == 400
    assert "has no scorer &#x27;nope&#x27;" in bad.content.decode()
    good = client.post(
        "/leaderboards/",
        {
            "team": tenant.team.pk,
            "name": "B",
            "evaluation_0": "QA",
            "scorer_0": "exact_match",
            "metric_0": "mean",
            "evaluation_1": "QA",
            "metric_1": "latency_p50",
            "minimize_1": "on",
        },
    )
    board = leaderboards.Leaderboard.objects.get()
    assert good.status_code == 302 and good["Location"] == f"/leaderboards/{board.pk}"
    assert [c["metric"] for c in board.columns] == ["mean", "latency_p50"]
    assert "B" in client.get("/leaderboards/").content.decode()


def test_another_team_or_organization_gets_404(tenant):
    tenant.run(results={0: CHEAP})
    board = tenant.board()
    stranger = Tenant("stranger")
    assert _client(stranger.user).get(f"/leaderboards/{board.pk}").status_code == 404
    # Creating a board in a team one is not in is refused.
    response = _client(stranger.user).post(
        "/leaderboards/", {"team": tenant.team.pk, "name": "X", "evaluation_0": "QA"}
    )
    assert response.status_code == 400
    assert not leaderboards.Leaderboard.objects.filter(name="X").exists()
    # Same organization, another team, not an admin: 404 as well.
    neighbour = get_user_model().objects.create_user("neighbour", password="pw-1234567")
    membership_set(organization=tenant.org, user=neighbour, role="member")
    other_team = Team.objects.create(organization=tenant.org, name=f"other-{uuid.uuid4().hex[:6]}")
    team_add_member(team=other_team, user=neighbour)
    assert _client(neighbour).get(f"/leaderboards/{board.pk}").status_code == 404
    # The organization's admin reads every team's leaderboards.
    membership_set(organization=tenant.org, user=neighbour, role="admin")
    assert _client(neighbour).get(f"/leaderboards/{board.pk}").status_code == 200
    # A team member removed from the organization loses access.
    from billing.models import Membership

    Membership.objects.filter(organization=tenant.org, user=tenant.user).delete()
    assert _client(tenant.user).get(f"/leaderboards/{board.pk}").status_code == 404
    assert _client(tenant.user).get("/leaderboards/").status_code == 200


def test_detail_page_shows_the_teams_arena_ratings_when_on(tenant):
    from evaluations.models import ArenaRatings

    tenant.run(results={0: CHEAP})
    board = tenant.board()
    client = _client(tenant.user)
    assert (
        "No arena votes in this team yet"
        in client.get(f"/leaderboards/{board.pk}").content.decode()
    )
    ArenaRatings.objects.create(
        scope=ArenaRatings.Scope.TEAM,
        scope_id=tenant.team.pk,
        ratings=[
            {
                "model": "m/arena-star",
                "rating": 1123.4,
                "low": 1090.2,
                "high": 1150.9,
                "rank": 1,
                "battles": 42,
                "win_rate": 0.61,
                "provisional": False,
            }
        ],
        computed_at=timezone.now(),
    )
    html = client.get(f"/leaderboards/{board.pk}").content.decode()
    assert "m/arena-star" in html and "1123 [1090, 1151]" in html
    board.show_arena = False
    board.save()
    assert "m/arena-star" not in client.get(f"/leaderboards/{board.pk}").content.decode()


def test_edit_page_updates_and_refuses_bad_columns(tenant):
    tenant.run(results={0: CHEAP, 1: DEAR})
    board = tenant.board()
    client = _client(tenant.user)
    page = client.get(f"/leaderboards/{board.pk}/edit")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="Board"' in html and 'id="lb-initial-columns"' in html
    bad = client.post(
        f"/leaderboards/{board.pk}/edit",
        {"name": "Board", "evaluation_0": "QA", "scorer_0": "nope", "metric_0": "mean"},
    )
    assert bad.status_code == 400 and "has no scorer" in bad.content.decode()
    board.refresh_from_db()
    assert board.columns[0]["scorer"] == "exact_match" and board.show_arena
    good = client.post(
        f"/leaderboards/{board.pk}/edit",
        {
            "name": "Renamed",
            "description": "Cheaper first",
            "evaluation_0": "QA",
            "metric_0": "cost_per_item",
            "minimize_0": "on",
        },
    )
    assert good.status_code == 302 and good["Location"] == f"/leaderboards/{board.pk}"
    board.refresh_from_db()
    assert (board.name, board.description, board.show_arena) == ("Renamed", "Cheaper first", False)
    assert board.columns == [
        {"evaluation": "QA", "scorer": "", "metric": "cost_per_item", "minimize": True}
    ]
    assert leaderboard_table(board)["rows"][0]["model"] == "m/cheap"
    stranger = Tenant("edit-stranger")
    assert _client(stranger.user).get(f"/leaderboards/{board.pk}/edit").status_code == 404
    assert _client(stranger.user).post(f"/leaderboards/{board.pk}/edit", {}).status_code == 404
