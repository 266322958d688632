"""The benchmark tables' arithmetic: percentiles, medians over rounds, same-round differences
against the same server's floor, ratios to LiteLLM, targets, generator saturation."""

from bench.loadgen import LoadResult, Sample, percentile
from bench.report import (
    DIRECT,
    FLOOR,
    LITELLM,
    OURS,
    PG,
    build_rows,
    fastest,
    floor_of,
    render_markdown,
    render_targets,
    saturation_notes,
    target_rows,
)
from bench.run import Plan
from bench.targets import server_argv


def test_percentile_is_nearest_rank_in_milliseconds():
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([0.002], 99) == 2
    assert percentile([], 50) is None


def test_load_result_counts_errors_tokens_per_second_and_generator_share():
    result = LoadResult(
        samples=[
            Sample(latency=1.1, ttft=0.1, tokens=11),  # 10 tokens in 1 s after the first
            Sample(latency=0.5, ttft=0.1, tokens=5),  # 4 tokens in 0.4 s
            Sample(latency=0.2, error="http 429"),
        ],
        wall_seconds=2.0,
        cpu_seconds=0.5,
    )
    assert result.errors == 1
    assert result.error_kinds() == {"http 429": 1}
    assert result.rps == 1.0  # only successful requests count
    assert round(result.tokens_per_second(), 6) == 10.0
    assert result.summary()["generator_cpu_share"] == 0.25


def _rounds(**by_target):
    return {
        target: [
            {
                "latency_p50_ms": v,
                "rps": r,
                "server_cpu_ms_per_request": cpu,
                "generator_cpu_share": 0.95 if target == LITELLM else 0.2,
            }
            for v, r, cpu in values
        ]
        for target, values in by_target.items()
    }


PLAN = Plan(
    rounds=3, duration=1, concurrencies=(1, 16), stream_concurrencies=(), many=(), compare_runs=0
)


def _results():
    return {
        ("plain", 1): _rounds(
            **{
                DIRECT: [(1.0, 500, 0.5), (5.0, 400, 0.5), (1.0, 450, 0.5)],
                FLOOR["uvicorn"]: [(2.0, 300, 2.0), (6.0, 250, 2.0), (2.5, 280, 2.0)],
                OURS["uvicorn"]: [(2.4, 200, 3.0), (6.2, 190, 2.8), (3.5, 195, 3.2)],
                LITELLM: [(10.0, 50, 9.0), (12.0, 40, 9.0), (11.0, 45, 9.0)],
            }
        ),
        ("plain", 16): _rounds(
            **{
                FLOOR["uvicorn"]: [(1, 600, 2.0), (1, 500, 2.0), (1, 550, 2.0)],
                FLOOR["granian"]: [(1, 500, 2.0), (1, 500, 2.0), (1, 500, 2.0)],
                OURS["uvicorn"]: [(1, 500, 2.8), (1, 420, 2.8), (1, 480, 2.8)],
                OURS["granian"]: [(1, 400, 3.5), (1, 400, 3.5), (1, 400, 3.5)],
                LITELLM: [(1, 100, 9.0), (1, 80, 9.0), (1, 100, 9.0)],
            }
        ),
    }


def test_added_latency_is_over_the_same_servers_floor_in_the_same_round():
    rows = {row.label: row for row in build_rows(_results(), PLAN)}
    assert rows["non-stream c=1: requests/s"].values[OURS["uvicorn"]] == 195
    # over direct: 1.4, 1.2, 2.5 -> median 1.4
    assert rows["non-stream c=1: added p50 ms over direct"].values[OURS["uvicorn"]] == 1.4
    assert floor_of(OURS["granian"]) == FLOOR["granian"]
    assert floor_of(PG) == FLOOR["uvicorn"]
    [ours] = [r for r in target_rows(_results(), PLAN) if r.target == OURS["uvicorn"]]
    assert round(ours.added_p50, 6) == 0.4  # 0.4, 0.2, 1.0 over the floor -> 0.4
    assert ours.rps16_x_litellm == 5.0  # 5.0, 5.25, 4.8: medians of same-round ratios
    assert ours.cpu_c1_x_floor == 1.5
    met = ours.met()
    assert met["p50"] is True and met["rps16"] is True and met["cpu"] is True
    [granian] = [r for r in target_rows(_results(), PLAN) if r.target == OURS["granian"]]
    assert granian.met()["rps16"] is False  # 4× LiteLLM
    assert granian.met()["cpu"] is False  # 1.75× its floor
    table = render_targets(target_rows(_results(), PLAN), PLAN)
    assert "| ours-uvicorn (floor-uvicorn) | 480 (5.00×) ✅ |" in table
    assert "400 (4.00×) ❌" in table  # granian: 4×, 5×, 4× LiteLLM in its rounds
    figures = render_markdown(build_rows(_results(), PLAN), present=[OURS["uvicorn"], LITELLM])
    assert figures.splitlines()[0] == "| figure (median over rounds) | ours uvicorn | LiteLLM |"


def test_fastest_server_and_saturated_generator_are_reported():
    lines = fastest(_results(), [OURS["uvicorn"], OURS["granian"]], "Ours")
    assert lines[0] == "Ours, req/s at c=16: **uvicorn** 480; granian 400 (best is 1.20×)"
    notes = saturation_notes(_results())
    assert "generator saturated: non-stream c=1 litellm: 95% of its core" in notes
    assert not any("uvicorn" in note for note in notes)


def test_each_server_runs_the_app_it_is_given():
    assert server_argv("daphne", 8000, "a:b")[-1] == "a:b"
    uvicorn = server_argv("uvicorn", 8000, "a:b")
    assert uvicorn[2:4] == ["uvicorn", "a:b"] and "httptools" in uvicorn
    granian = server_argv("granian", 8000, "a:b")
    assert granian[-1] == "a:b" and "--interface" in granian
