"""Turning a run's raw results into the table: medians over rounds, ratios, targets."""

import statistics
from collections.abc import Callable
from dataclasses import dataclass

DIRECT, SQLITE, PG, LITELLM = "direct", "ours-sqlite", "ours-pg", "litellm"
COLUMNS = [
    (DIRECT, "direct"),
    (SQLITE, "ours SQLite"),
    (PG, "ours PG+Redis"),
    (LITELLM, "LiteLLM"),
]


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


@dataclass
class Row:
    label: str
    values: dict  # target name -> median figure (or None)
    ratios: bool = True  # ours/LiteLLM and ours/direct make sense for this figure
    target: str = ""
    met: Callable[[float | None, float | None], bool | None] | None = None  # (ours, litellm)


def _per_round(results: dict, key: tuple, target: str, field: str) -> list:
    # A failed scenario leaves None for its round: it counts as missing, not as zero.
    rounds = results.get(key, {}).get(target, [])
    return [summary.get(field) if summary else None for summary in rounds]


def _added(results: dict, key: tuple, target: str, field: str) -> float | None:
    """Median over rounds of (target's figure - direct's figure in the same round)."""
    ours = _per_round(results, key, target, field)
    direct = _per_round(results, key, DIRECT, field)
    diffs = [a - b for a, b in zip(ours, direct, strict=False) if a is not None and b is not None]
    return _median(diffs)


def _lt(limit: float):
    return lambda ours, _litellm: None if ours is None else ours < limit


def _below_litellm(ours, litellm):
    return None if ours is None or litellm is None else ours < litellm


def _twice_litellm(ours, litellm):
    return None if ours is None or litellm is None else ours >= 2 * litellm


def build_rows(results: dict, plan) -> list[Row]:
    names = [name for name, _ in COLUMNS]
    rows: list[Row] = []

    def medians(key, field):
        return {t: _median(_per_round(results, key, t, field)) for t in names}

    def added(key, field):
        return {t: _added(results, key, t, field) for t in names if t != DIRECT}

    for c in plan.concurrencies:
        key = ("plain", c)
        rows.append(
            Row(
                f"non-stream c={c}: requests/s",
                medians(key, "rps"),
                target="≥ 2× LiteLLM" if c > 1 else "",
                met=_twice_litellm if c > 1 else None,
            )
        )
        rows.append(Row(f"non-stream c={c}: latency p50 ms", medians(key, "latency_p50_ms")))
        rows.append(Row(f"non-stream c={c}: latency p99 ms", medians(key, "latency_p99_ms")))
        for q, limit in (("p50", 3), ("p99", 10)):
            target, met = ("", None)
            if c == 1:
                target, met = f"< {limit} ms", _lt(limit)
            elif q == "p50":
                target, met = "< LiteLLM", _below_litellm
            rows.append(
                Row(
                    f"non-stream c={c}: added {q} ms",
                    added(key, f"latency_{q}_ms"),
                    ratios=True,
                    target=target,
                    met=met,
                )
            )
        rows.append(
            Row(
                f"non-stream c={c}: server CPU ms/request",
                medians(key, "server_cpu_ms_per_request"),
            )
        )
        rows.append(Row(f"non-stream c={c}: errors", medians(key, "errors"), ratios=False))
    for c in plan.stream_concurrencies:
        key = ("stream", c)
        rows.append(Row(f"stream c={c}: streams/s", medians(key, "rps")))
        rows.append(Row(f"stream c={c}: TTFT p50 ms", medians(key, "ttft_p50_ms")))
        rows.append(Row(f"stream c={c}: TTFT p99 ms", medians(key, "ttft_p99_ms")))
        rows.append(
            Row(
                f"stream c={c}: TTFT added p50 ms",
                added(key, "ttft_p50_ms"),
                target="< 3 ms" if c == 1 else "",
                met=_lt(3) if c == 1 else None,
            )
        )
        rows.append(Row(f"stream c={c}: TTFT added p99 ms", added(key, "ttft_p99_ms")))
        rows.append(Row(f"stream c={c}: tokens/s per stream", medians(key, "tokens_per_second")))
        rows.append(
            Row(f"stream c={c}: server CPU ms/stream", medians(key, "server_cpu_ms_per_request"))
        )
        rows.append(Row(f"stream c={c}: errors", medians(key, "errors"), ratios=False))
    for n in plan.many:
        key = ("many", n)
        rows.append(
            Row(
                f"{n} streams: held open",
                medians(key, "held"),
                ratios=False,
                target=f"= {n}" if n == 1000 else "",
                met=(lambda ours, _l, n=n: None if ours is None else ours == n)
                if n == 1000
                else None,
            )
        )
        rows.append(
            Row(
                f"{n} streams: errors",
                medians(key, "errors"),
                ratios=False,
                target="0" if n == 1000 else "",
                met=(lambda ours, _l: None if ours is None else ours == 0) if n == 1000 else None,
            )
        )
        rows.append(Row(f"{n} streams: seconds to open all", medians(key, "ramp_seconds")))
        rows.append(Row(f"{n} streams: server peak RSS MB", medians(key, "rss_peak_mb")))
        rows.append(
            Row(f"{n} streams: engine streams cancelled", medians(key, "engine_cancelled"), False)
        )
        rows.append(
            Row(
                f"{n} streams: slots still held after hang-up",
                medians(key, "slots_left_held"),
                ratios=False,
                target="0",
                met=lambda ours, _l: None if ours is None else ours == 0,
            )
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
                    ratios=False,
                )
            )
        rows.append(Row("compare 6 panes: errors", medians(key, "errors"), ratios=False))
    return rows


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return f"{value:.0f}"


def _ratio(a, b) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def _verdict(row: Row, target: str) -> str:
    if row.met is None:
        return ""
    ok = row.met(row.values.get(target), row.values.get(LITELLM))
    return "" if ok is None else ("yes" if ok else "NO")


def render_markdown(rows: list[Row]) -> str:
    header = [
        "figure (median over rounds)",
        *(title for _, title in COLUMNS),
        "SQLite/LiteLLM",
        "PG/LiteLLM",
        "SQLite/direct",
        "target",
        "met (SQLite, PG)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        v = row.values
        cells = [row.label, *(_fmt(v.get(name)) for name, _ in COLUMNS)]
        if row.ratios:
            cells += [
                _ratio(v.get(SQLITE), v.get(LITELLM)),
                _ratio(v.get(PG), v.get(LITELLM)),
                _ratio(v.get(SQLITE), v.get(DIRECT)),
            ]
        else:
            cells += ["", "", ""]
        verdicts = [_verdict(row, SQLITE), _verdict(row, PG)]
        cells += [row.target, ", ".join(x for x in verdicts if x)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
