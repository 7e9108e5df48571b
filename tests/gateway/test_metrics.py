"""The gateway's request series: plain numbers rendered as Prometheus families at scrape time."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from faillite.client import Client
from faillite.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from faillite.wire import RouteTable


def test_requests_and_latency_per_app_render_as_a_counter_and_a_cumulative_histogram() -> None:
    metrics = GatewayMetrics(Client.from_table(RouteTable(version=1, routes=())))
    for status, seconds in ((200, 0.0004), (200, 0.002), (503, 30.0)):  # 0.002: on its bound
        metrics.observe("cam", status, seconds)
    text = metrics.render().decode()
    assert 'faillite_gateway_requests_total{app="cam",code="200"} 2.0' in text
    assert 'faillite_gateway_requests_total{app="cam",code="503"} 1.0' in text
    assert 'faillite_gateway_request_seconds_bucket{app="cam",le="0.0005"} 1.0' in text
    assert 'faillite_gateway_request_seconds_bucket{app="cam",le="0.002"} 2.0' in text
    assert 'faillite_gateway_request_seconds_bucket{app="cam",le="10.0"} 2.0' in text
    assert 'faillite_gateway_request_seconds_bucket{app="cam",le="+Inf"} 3.0' in text
    assert 'faillite_gateway_request_seconds_sum{app="cam"} 30.0024' in text
    assert "# TYPE faillite_gateway_request_seconds histogram" in text
    assert CONTENT_TYPE == CONTENT_TYPE_LATEST
