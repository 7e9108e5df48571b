"""The agent's request series are plain numbers turned into Prometheus families at scrape time."""

from __future__ import annotations

from faillite.agent.metrics import AgentMetrics


def test_requests_and_latency_render_as_a_counter_and_a_cumulative_histogram() -> None:
    metrics = AgentMetrics("n1", 1024, lambda: 0, lambda: 1)
    series = metrics.model("m")
    series.requests += 3
    for seconds in (0.0003, 0.0005, 0.002, 99.0):  # 0.0005 is its bucket's bound: counted in it
        series.observe(seconds)
    series.failed(400)
    assert metrics.model("m") is series
    text = metrics.render()[0].decode()
    assert 'faillite_agent_inference_requests_total{model="m"} 3.0' in text
    assert 'faillite_agent_inference_duration_seconds_bucket{le="0.0005",model="m"} 2.0' in text
    assert 'faillite_agent_inference_duration_seconds_bucket{le="0.001",model="m"} 2.0' in text
    assert 'faillite_agent_inference_duration_seconds_bucket{le="0.002",model="m"} 3.0' in text
    assert 'faillite_agent_inference_duration_seconds_bucket{le="10.0",model="m"} 3.0' in text
    assert 'faillite_agent_inference_duration_seconds_bucket{le="+Inf",model="m"} 4.0' in text
    assert 'faillite_agent_inference_duration_seconds_count{model="m"} 4.0' in text
    assert 'faillite_agent_inference_duration_seconds_sum{model="m"} 99.0028' in text
    assert 'faillite_agent_inference_failures_total{code="400",model="m"} 1.0' in text
    assert "# TYPE faillite_agent_inference_requests_total counter" in text
    assert "# TYPE faillite_agent_inference_duration_seconds histogram" in text
