"""The benchmark table's arithmetic: percentiles, medians over rounds, added latency, targets."""

from bench.loadgen import LoadResult, Sample, percentile
from bench.report import DIRECT, LITELLM, SQLITE, build_rows, render_markdown
from bench.run import Plan


def test_percentile_is_nearest_rank_in_milliseconds():
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([0.002], 99) == 2
    assert percentile([], 50) is None


def test_load_result_counts_errors_and_tokens_per_second():
    result = LoadResult(
        samples=[
            Sample(latency=1.1, ttft=0.1, tokens=11),  # 10 tokens in 1 s after the first
            Sample(latency=0.5, ttft=0.1, tokens=5),  # 4 tokens in 0.4 s
            Sample(latency=0.2, error="http 429"),
        ],
        wall_seconds=2.0,
    )
    assert result.errors == 1
    assert result.error_kinds() == {"http 429": 1}
    assert result.rps == 1.0  # only successful requests count
    assert round(result.tokens_per_second(), 6) == 10.0


def _rounds(**by_target):
    return {
        target: [{"latency_p50_ms": v, "rps": r} for v, r in values]
        for target, values in by_target.items()
    }


def test_added_latency_is_the_median_of_same_round_differences():
    plan = Plan(
        rounds=3, duration=1, concurrencies=(1,), stream_concurrencies=(), many=(), compare_runs=0
    )
    results = {
        ("plain", 1): _rounds(
            **{
                DIRECT: [(1.0, 500), (5.0, 400), (1.0, 450)],
                SQLITE: [(3.0, 100), (6.0, 90), (4.0, 95)],
                LITELLM: [(10.0, 50), (12.0, 40), (11.0, 45)],
            }
        )
    }
    rows = {row.label: row for row in build_rows(results, plan)}
    added = rows["non-stream c=1: added p50 ms"]
    assert added.values[SQLITE] == 2.0  # differences 2, 1, 3 -> median 2
    assert added.values[LITELLM] == 9.0  # differences 9, 7, 10 -> median 9
    assert rows["non-stream c=1: requests/s"].values[SQLITE] == 95
    table = render_markdown(list(rows.values())).splitlines()
    added_line = next(line for line in table if line.startswith("| non-stream c=1: added p50"))
    assert added_line.endswith("| < 3 ms | yes |")  # 2 ms meets the target
    rps_line = next(line for line in table if line.startswith("| non-stream c=1: requests/s"))
    assert "| 2.11× |" in rps_line  # ours / LiteLLM: 95 / 45
