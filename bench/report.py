"""Turning a run's raw results into the tables: medians over rounds, same-round differences and
ratios against the same server's relay floor and against LiteLLM, the targets of issue #13."""

import statistics
from dataclasses import dataclass

SERVERS = ("daphne", "uvicorn", "granian")
DIRECT, LITELLM = "direct", "litellm"
FLOOR = {server: f"floor-{server}" for server in SERVERS}
OURS = {server: f"ours-{server}" for server in SERVERS}
PG = "ours-pg"
PG_SERVER = "uvicorn"  # ours-pg runs the API plane under this server
SQLITE = OURS["daphne"]  # the earlier runs' "ours-sqlite" (one daphne process on SQLite)
ALIASES = {"ours-sqlite": SQLITE}

COLUMNS = [
    (DIRECT, "direct"),
    *((FLOOR[s], f"floor {s}") for s in SERVERS),
    *((OURS[s], f"ours {s}") for s in SERVERS),
    (PG, f"ours PG+Redis ({PG_SERVER})"),
    (LITELLM, "LiteLLM"),
]
GATEWAYS = [OURS[s] for s in SERVERS] + [PG]

# Issue #13's targets.
RPS_TIMES_LITELLM = 5.0
ADDED_P50_MS = 0.5
ADDED_P99_MS = 2.0
ADDED_TTFT_MS = 0.5
CPU_TIMES_FLOOR = 1.5
GENERATOR_SATURATED = 0.9  # the load generator's CPU share of its core
CLIENT_CORE_SATURATED = 0.95  # generator + fake engine, which share a core


def server_of(target: str) -> str | None:
    if target == PG:
        return PG_SERVER
    for server in SERVERS:
        if target in (FLOOR[server], OURS[server]):
            return server
    return None


def floor_of(target: str) -> str | None:
    server = server_of(target)
    return FLOOR[server] if server else None


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _per_round(results: dict, key: tuple, target: str, field: str) -> list:
    # A failed scenario leaves None for its round: it counts as missing, not as zero.
    rounds = results.get(key, {}).get(target, [])
    return [summary.get(field) if summary else None for summary in rounds]


def median_of(results: dict, key: tuple, target: str, field: str) -> float | None:
    return _median(_per_round(results, key, target, field))


def added(results: dict, key: tuple, target: str, field: str, base: str = DIRECT) -> float | None:
    """Median over rounds of (target's figure - base's figure in the same round)."""
    ours = _per_round(results, key, target, field)
    other = _per_round(results, key, base, field)
    diffs = [a - b for a, b in zip(ours, other, strict=False) if a is not None and b is not None]
    return _median(diffs)


def ratio(results: dict, key: tuple, target: str, field: str, base: str) -> float | None:
    """Median over rounds of (target's figure / base's figure in the same round)."""
    ours = _per_round(results, key, target, field)
    other = _per_round(results, key, base, field)
    ratios = [a / b for a, b in zip(ours, other, strict=False) if a is not None and b]
    return _median(ratios)


@dataclass
class Row:
    label: str
    values: dict  # target name -> median figure (or None)


def build_rows(results: dict, plan) -> list[Row]:
    """The figures table: one row per figure, one column per target, medians over rounds."""
    names = [name for name, _ in COLUMNS]
    rows: list[Row] = []

    def medians(key, field):
        return {t: median_of(results, key, t, field) for t in names}

    def added_over_direct(key, field):
        return {t: added(results, key, t, field) for t in names if t != DIRECT}

    for c in plan.concurrencies:
        key = ("plain", c)
        rows.append(Row(f"non-stream c={c}: requests/s", medians(key, "rps")))
        rows.append(Row(f"non-stream c={c}: latency p50 ms", medians(key, "latency_p50_ms")))
        rows.append(Row(f"non-stream c={c}: latency p99 ms", medians(key, "latency_p99_ms")))
        if c == 1:
            for q in ("p50", "p99"):
                rows.append(
                    Row(
                        f"non-stream c={c}: added {q} ms over direct",
                        added_over_direct(key, f"latency_{q}_ms"),
                    )
                )
        rows.append(
            Row(
                f"non-stream c={c}: server CPU ms/request",
                medians(key, "server_cpu_ms_per_request"),
            )
        )
        rows.append(Row(f"non-stream c={c}: server CPU share", medians(key, "server_cpu_share")))
        rows.append(Row(f"non-stream c={c}: errors", medians(key, "errors")))
        rows.append(
            Row(f"non-stream c={c}: generator CPU share", medians(key, "generator_cpu_share"))
        )
        rows.append(Row(f"non-stream c={c}: engine CPU share", medians(key, "engine_cpu_share")))
    for c in plan.stream_concurrencies:
        key = ("stream", c)
        rows.append(Row(f"stream c={c}: streams/s", medians(key, "rps")))
        rows.append(Row(f"stream c={c}: TTFT p50 ms", medians(key, "ttft_p50_ms")))
        rows.append(Row(f"stream c={c}: TTFT p99 ms", medians(key, "ttft_p99_ms")))
        if c == 1:
            rows.append(
                Row(
                    f"stream c={c}: TTFT added p50 ms over direct",
                    added_over_direct(key, "ttft_p50_ms"),
                )
            )
        rows.append(Row(f"stream c={c}: tokens/s per stream", medians(key, "tokens_per_second")))
        rows.append(
            Row(f"stream c={c}: server CPU ms/stream", medians(key, "server_cpu_ms_per_request"))
        )
        rows.append(Row(f"stream c={c}: errors", medians(key, "errors")))
        rows.append(Row(f"stream c={c}: generator CPU share", medians(key, "generator_cpu_share")))
    for n in plan.many:
        key = ("many", n)
        rows.append(Row(f"{n} streams: held open", medians(key, "held")))
        rows.append(Row(f"{n} streams: errors", medians(key, "errors")))
        rows.append(Row(f"{n} streams: seconds to open all", medians(key, "ramp_seconds")))
        rows.append(Row(f"{n} streams: server RSS before MB", medians(key, "rss_before_mb")))
        rows.append(Row(f"{n} streams: server peak RSS MB", medians(key, "rss_peak_mb")))
        rows.append(Row(f"{n} streams: engine streams cancelled", medians(key, "engine_cancelled")))
        rows.append(
            Row(f"{n} streams: slots still held after hang-up", medians(key, "slots_left_held"))
        )
    if plan.compare_runs:
        key = ("compare", 6)
        for field, label in (
            ("delay_p50_ms", "p50"),
            ("delay_p99_ms", "p99"),
            ("delay_max_ms", "max"),
        ):
            rows.append(
                Row(
                    f"compare 6 panes: engine 1st token → ws message {label} ms",
                    medians(key, field),
                )
            )
        rows.append(Row("compare 6 panes: errors", medians(key, "errors")))
    return rows


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        if abs(value) < 10:
            return f"{value:.2f}"
        return f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"
    return f"{value:.0f}"


def render_markdown(rows: list[Row], present: list[str] | None = None) -> str:
    """The figures table; `present` limits the columns to the targets that ran."""
    columns = [(n, t) for n, t in COLUMNS if present is None or n in present]
    header = ["figure (median over rounds)", *(title for _, title in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if all(row.values.get(name) is None for name, _ in columns):
            continue
        cells = [row.label, *(_fmt(row.values.get(name)) for name, _ in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" ✅" if ok else " ❌")


@dataclass
class TargetRow:
    """Issue #13's targets for one gateway target, against its own server's floor and LiteLLM."""

    target: str
    rps16: float | None
    rps16_x_litellm: float | None
    rps64: float | None
    rps64_x_litellm: float | None
    added_p50: float | None
    added_p99: float | None
    added_ttft: float | None
    cpu_c1: float | None
    cpu_c1_x_floor: float | None
    cpu_c16: float | None
    cpu_c16_x_floor: float | None
    streams_errors: float | None
    streams_held: float | None
    streams_rss: float | None

    def met(self) -> dict:
        def at_least(v, limit):
            return None if v is None else v >= limit

        def at_most(v, limit):
            return None if v is None else v <= limit

        return {
            "rps16": at_least(self.rps16_x_litellm, RPS_TIMES_LITELLM),
            "rps64": at_least(self.rps64_x_litellm, RPS_TIMES_LITELLM),
            "p50": at_most(self.added_p50, ADDED_P50_MS),
            "p99": at_most(self.added_p99, ADDED_P99_MS),
            "ttft": at_most(self.added_ttft, ADDED_TTFT_MS),
            "cpu": None
            if self.cpu_c1_x_floor is None and self.cpu_c16_x_floor is None
            else all(
                v <= CPU_TIMES_FLOOR for v in (self.cpu_c1_x_floor, self.cpu_c16_x_floor) if v
            ),
            "streams": None if self.streams_errors is None else self.streams_errors == 0,
        }


def target_rows(results: dict, plan) -> list[TargetRow]:
    many = max(plan.many) if plan.many else None
    rows = []
    for name in GATEWAYS:
        if not any(by_target.get(name) for by_target in results.values()):
            continue
        floor = floor_of(name)
        plain1, plain16, plain64 = ("plain", 1), ("plain", 16), ("plain", 64)
        rows.append(
            TargetRow(
                target=name,
                rps16=median_of(results, plain16, name, "rps"),
                rps16_x_litellm=ratio(results, plain16, name, "rps", LITELLM),
                rps64=median_of(results, plain64, name, "rps"),
                rps64_x_litellm=ratio(results, plain64, name, "rps", LITELLM),
                added_p50=added(results, plain1, name, "latency_p50_ms", floor),
                added_p99=added(results, plain1, name, "latency_p99_ms", floor),
                added_ttft=added(results, ("stream", 1), name, "ttft_p50_ms", floor),
                cpu_c1=median_of(results, plain1, name, "server_cpu_ms_per_request"),
                cpu_c1_x_floor=ratio(results, plain1, name, "server_cpu_ms_per_request", floor),
                cpu_c16=median_of(results, plain16, name, "server_cpu_ms_per_request"),
                cpu_c16_x_floor=ratio(results, plain16, name, "server_cpu_ms_per_request", floor),
                streams_errors=median_of(results, ("many", many), name, "errors"),
                streams_held=median_of(results, ("many", many), name, "held"),
                streams_rss=median_of(results, ("many", many), name, "rss_peak_mb"),
            )
        )
    return rows


def _x(value) -> str:
    return "—" if value is None else f"{value:.2f}×"


def render_targets(rows: list[TargetRow], plan) -> str:
    many = max(plan.many) if plan.many else "N"
    header = [
        "gateway (its floor)",
        f"c=16 req/s (× LiteLLM, ≥ {RPS_TIMES_LITELLM:g}×)",
        f"c=64 req/s (× LiteLLM, ≥ {RPS_TIMES_LITELLM:g}×)",
        f"c=1 added p50 ms over floor (≤ {ADDED_P50_MS:g})",
        f"c=1 added p99 ms over floor (≤ {ADDED_P99_MS:g})",
        f"TTFT added ms over floor (≤ {ADDED_TTFT_MS:g})",
        f"CPU ms/request c=1 (× floor, ≤ {CPU_TIMES_FLOOR:g}×)",
        f"CPU ms/request c=16 (× floor, ≤ {CPU_TIMES_FLOOR:g}×)",
        f"{many} streams: errors (= 0), held",
        f"{many} streams: peak RSS MB",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        met = row.met()
        cells = [
            f"{row.target} ({floor_of(row.target)})",
            f"{_fmt(row.rps16)} ({_x(row.rps16_x_litellm)}){_mark(met['rps16'])}",
            f"{_fmt(row.rps64)} ({_x(row.rps64_x_litellm)}){_mark(met['rps64'])}",
            f"{_fmt(row.added_p50)}{_mark(met['p50'])}",
            f"{_fmt(row.added_p99)}{_mark(met['p99'])}",
            f"{_fmt(row.added_ttft)}{_mark(met['ttft'])}",
            f"{_fmt(row.cpu_c1)} ({_x(row.cpu_c1_x_floor)})"
            + _mark(None if row.cpu_c1_x_floor is None else row.cpu_c1_x_floor <= CPU_TIMES_FLOOR),
            f"{_fmt(row.cpu_c16)} ({_x(row.cpu_c16_x_floor)})"
            + _mark(
                None if row.cpu_c16_x_floor is None else row.cpu_c16_x_floor <= CPU_TIMES_FLOOR
            ),
            f"{_fmt(row.streams_errors)}, {_fmt(row.streams_held)}{_mark(met['streams'])}",
            _fmt(row.streams_rss),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fastest(results: dict, candidates: list[str], label: str) -> list[str]:
    """Which of `candidates` (one per server) is fastest, by how much, per headline figure."""
    lines = []
    figures = (
        (("plain", 16), "rps", "req/s at c=16", True),
        (("plain", 64), "rps", "req/s at c=64", True),
        (("plain", 1), "latency_p50_ms", "p50 ms at c=1", False),
    )
    for key, field, title, higher in figures:
        values = {t: median_of(results, key, t, field) for t in candidates}
        values = {t: v for t, v in values.items() if v is not None}
        if len(values) < 2:
            continue
        order = sorted(values, key=values.get, reverse=higher)
        best = order[0]
        others = ", ".join(
            f"{server_of(t)} {_fmt(values[t])} ("
            + (
                f"best is {values[best] / values[t]:.2f}×"
                if higher
                else f"best is {values[t] - values[best]:.2f} ms lower"
            )
            + ")"
            for t in order[1:]
        )
        lines.append(f"{label}, {title}: **{server_of(best)}** {_fmt(values[best])}; {others}")
    return lines


def saturation_notes(results: dict) -> list[str]:
    """Scenarios where the client side, not the server under test, may have been the limit."""
    notes = []
    for (kind, n), by_target in results.items():
        if kind not in ("plain", "stream"):
            continue
        for target in by_target:
            gen = median_of(results, (kind, n), target, "generator_cpu_share")
            engine = median_of(results, (kind, n), target, "engine_cpu_share")
            scenario = f"{'non-stream' if kind == 'plain' else 'stream'} c={n} {target}"
            if gen is not None and gen >= GENERATOR_SATURATED:
                notes.append(f"generator saturated: {scenario}: {gen:.0%} of its core")
            elif gen is not None and engine is not None and gen + engine >= CLIENT_CORE_SATURATED:
                notes.append(
                    f"client core saturated: {scenario}: generator {gen:.0%} + engine "
                    f"{engine:.0%} of CPU 0"
                )
    return notes


def generator_summary(results: dict) -> str:
    """The highest median generator share over targets, per scenario."""
    parts = []
    for (kind, n), by_target in results.items():
        if kind not in ("plain", "stream"):
            continue
        shares = {t: median_of(results, (kind, n), t, "generator_cpu_share") for t in by_target}
        shares = {t: v for t, v in shares.items() if v is not None}
        if shares:
            top = max(shares, key=shares.get)
            label = "non-stream" if kind == "plain" else "stream"
            parts.append(f"{label} c={n} {shares[top]:.0%} ({top})")
    return "; ".join(parts)
