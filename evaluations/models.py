"""Datasets, evaluations (dataset version x scorers x models x trials), their predictions,
leaderboards, and the blind arena's matches, votes and battles.

Like `traces`, this app knows organizations, teams, projects and users by id (and names at the
time), so its core never imports the web app; only its page and API layers do.
"""

from django.db import models


class Dataset(models.Model):
    organization_id = models.BigIntegerField()
    project_id = models.BigIntegerField()
    name = models.CharField(max_length=100)
    created_by_id = models.BigIntegerField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project_id", "name"], name="uniq_dataset_name")
        ]

    def __str__(self) -> str:
        return self.name


class DatasetVersion(models.Model):
    """Immutable: identified by the hash of its rows; a new upload with other content is a new
    version, the same content again is the same version."""

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        TRACES = "traces", "From traces"
        API = "api", "API"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)
    # Every column found, in first-seen order ("input" or "messages", "expected", variables).
    columns = models.JSONField(default=list)
    row_count = models.PositiveIntegerField()
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UPLOAD)
    filename = models.CharField(max_length=200, blank=True)
    created_by_id = models.BigIntegerField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "content_hash"], name="uniq_version_hash"),
            models.UniqueConstraint(fields=["dataset", "number"], name="uniq_version_number"),
        ]


class DatasetRow(models.Model):
    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="rows")
    index = models.PositiveIntegerField()
    data = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "index"], name="uniq_row_index")]
        ordering = ["index"]


class Evaluation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        BUDGET_EXCEEDED = "budget_exceeded", "Budget exceeded"
        FAILED = "failed", "Failed"

    TERMINAL = {Status.COMPLETED, Status.CANCELLED, Status.BUDGET_EXCEEDED, Status.FAILED}

    organization_id = models.BigIntegerField()
    team_id = models.BigIntegerField()
    project_id = models.BigIntegerField()
    team = models.CharField(max_length=100)
    project = models.CharField(max_length=100)
    created_by_id = models.BigIntegerField()
    # Runs of one name are one evaluation over time: a leaderboard column follows the latest.
    name = models.CharField(max_length=100)
    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="evaluations"
    )
    # [{"name": "exact_match", "scorer": "exact_match", "args": {...}, "mapping": {...}}]
    scorers = models.JSONField(default=list)
    # [{"model": "<catalog id>", "params": {"temperature": 0, "max_tokens": 256, ...}}]
    model_specs = models.JSONField(default=list)
    system_prompt = models.TextField(blank=True)
    trials = models.PositiveSmallIntegerField(default=1)
    # The run stops (budget_exceeded) before a call whose worst case would pass the budget.
    budget_micros = models.BigIntegerField(null=True)
    estimate_micros = models.BigIntegerField(default=0)
    worst_case_micros = models.BigIntegerField(default=0)
    # Charged so far (the ledger's figures), and worst cases of calls in flight.
    spent_micros = models.BigIntegerField(default=0)
    committed_micros = models.BigIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    error = models.CharField(max_length=500, blank=True)
    trace_id = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["project_id", "-created_at"], name="eval_project_recent"),
            models.Index(fields=["team_id", "name", "-created_at"], name="eval_team_name"),
        ]


class Prediction(models.Model):
    """One (dataset row, model, trial) of an evaluation: its call, answer and scores."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        ERROR = "error", "Error"
        SKIPPED = "skipped", "Skipped"  # cancelled or over budget before it ran

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="predictions")
    row_index = models.PositiveIntegerField()
    model_index = models.PositiveSmallIntegerField()
    trial = models.PositiveSmallIntegerField(default=0)
    model = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Tries so far; each try's gateway request id is derived from the prediction and the try,
    # so a replayed task finds its own earlier call instead of calling (and billing) again.
    attempts = models.PositiveSmallIntegerField(default=0)
    request_id = models.CharField(max_length=64, blank=True)
    claimed_until = models.DateTimeField(null=True)
    output = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    # {"<scorer name>": {"score": 0..1, "passed": bool, "reason": "..."}}
    scores = models.JSONField(default=dict)
    latency_ms = models.PositiveIntegerField(null=True)
    ttft_ms = models.PositiveIntegerField(null=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # The prediction's call plus its judge calls, as the ledger charged them.
    cost_micros = models.BigIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["evaluation", "row_index", "model_index", "trial"],
                name="uniq_prediction",
            )
        ]
        indexes = [models.Index(fields=["evaluation", "status"], name="prediction_status")]


class Leaderboard(models.Model):
    """Per team: rows are models, columns (as in Weave) an evaluation (by name: its latest
    completed run), a scorer, a metric and whether lower is better."""

    organization_id = models.BigIntegerField()
    team_id = models.BigIntegerField()
    team = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    # [{"evaluation": "<name>", "scorer": "<scorer name>", "metric": "mean" | "pass_rate" |
    #   "cost_per_item" | "latency_p50", "minimize": false}]
    columns = models.JSONField(default=list)
    show_arena = models.BooleanField(default=True)
    created_by_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team_id", "name"], name="uniq_leaderboard_name")
        ]


class ArenaMatch(models.Model):
    """A blind Compare: which model is behind which anonymous pane, kept on the server until
    the vote (the page only knows "Model A", "Model B", ...)."""

    id = models.CharField(max_length=32, primary_key=True)
    organization_id = models.BigIntegerField()
    team_id = models.BigIntegerField()
    project_id = models.BigIntegerField()
    voter_id = models.BigIntegerField()
    # Model ids in pane order: pane_models[0] is "Model A".
    pane_models = models.JSONField()
    params = models.JSONField(default=dict)
    session_id = models.CharField(max_length=32, blank=True)
    turns = models.PositiveSmallIntegerField(default=0)
    prompt_hash = models.CharField(max_length=64, blank=True)
    voted_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["voter_id", "voted_at"], name="arena_match_voter")]


class ArenaVote(models.Model):
    class Kind(models.TextChoices):
        PAIR = "pair", "A / B / tie / both bad"
        BEST = "best", "Best of N"
        RANKING = "ranking", "Full ranking"

    match = models.OneToOneField(ArenaMatch, on_delete=models.CASCADE, related_name="vote")
    organization_id = models.BigIntegerField()
    team_id = models.BigIntegerField()
    voter_id = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # pair: {"winner": 0 | 1 | "tie" | "both_bad"}; best: {"winner": i}; ranking: {"order": [...]}
    outcome = models.JSONField()
    prompt_hash = models.CharField(max_length=64)
    turns = models.PositiveSmallIntegerField()
    answer_lengths = models.JSONField(default=list)
    # An answer that names its own model (or family) makes the vote void: not blind any more.
    void = models.BooleanField(default=False)
    void_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["voter_id", "created_at"], name="arena_vote_voter")]


class Battle(models.Model):
    """One pairwise outcome of a vote (Chatbot Arena's unit): a best-of-N vote gives the winner
    a win over each other pane; a ranking gives every pair."""

    class Winner(models.TextChoices):
        A = "model_a", "Model A"
        B = "model_b", "Model B"
        TIE = "tie", "Tie"
        BOTH_BAD = "tie_bothbad", "Both bad"

    vote = models.ForeignKey(ArenaVote, on_delete=models.CASCADE, related_name="battles")
    organization_id = models.BigIntegerField()
    team_id = models.BigIntegerField()
    model_a = models.CharField(max_length=200)
    model_b = models.CharField(max_length=200)
    winner = models.CharField(max_length=12, choices=Winner.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["team_id", "created_at"], name="battle_team"),
            models.Index(fields=["organization_id", "created_at"], name="battle_org"),
        ]


class ArenaRatings(models.Model):
    """The latest Bradley-Terry fit for a team or an organization (computed by a task)."""

    class Scope(models.TextChoices):
        TEAM = "team", "Team"
        ORGANIZATION = "organization", "Organization"

    scope = models.CharField(max_length=12, choices=Scope.choices)
    scope_id = models.BigIntegerField()
    # [{"model", "rating", "low", "high", "rank", "battles", "win_rate", "provisional"}]
    ratings = models.JSONField(default=list)
    # {"models": [...], "win_rate": [[...]]}: row model's win rate against column model.
    matrix = models.JSONField(default=dict)
    battles = models.PositiveIntegerField(default=0)
    rounds = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "scope_id"], name="uniq_arena_scope")
        ]
