"""A stock OIP client (tritonclient) through the gateway of a real cluster, across a node failure."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from faillite.launch.cluster import LocalCluster
from faillite.zoo import digits
from tests.controller.cluster import small_config, start
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start(tmp_path, small_config(gateway=True))
    yield c
    c.stop()


def test_tritonclient_by_app_name_survives_a_node_kill(cluster: LocalCluster) -> None:
    import tritonclient.http as httpclient

    x, y = digits.heldout_split()
    url = cluster.gateway_url.removeprefix("http://")
    client = httpclient.InferenceServerClient(url, network_timeout=10.0, connection_timeout=10.0)
    try:
        assert client.is_model_ready("warm-a")
        assert client.get_model_metadata("warm-a")["name"] == "warm-a"

        def accuracy() -> float:
            correct = 0
            for start in range(0, 128, 32):
                tensor = httpclient.InferInput(digits.INPUT_NAME, [32, 64], "FP32")
                tensor.set_data_from_numpy(x[start : start + 32])
                out = client.infer("warm-a", [tensor]).as_numpy(digits.OUTPUT_NAME)
                correct += int((out.argmax(axis=1) == y[start : start + 32]).sum())
            return correct / 128

        backup = {a["name"]: a for a in cluster.apps()}["warm-a"]["backup"]
        assert backup["mode"] == "warm" and backup["node"] != "n1"
        before = accuracy()
        cluster.kill_node("n1", signal.SIGKILL)
        after = accuracy()  # served by the warm backup, through the same gateway URL
        assert before > 0.9 and after > 0.9
        wait_for(
            lambda: {a["name"]: a for a in cluster.apps()}["warm-a"]["node"] == backup["node"], 20, "failover"
        )
        tensor = httpclient.InferInput(digits.INPUT_NAME, [1, 64], "FP32")
        tensor.set_data_from_numpy(np.zeros((1, 64), np.float32))
        assert client.infer("warm-a", [tensor]).as_numpy(digits.OUTPUT_NAME).shape == (1, 10)
    finally:
        client.close()
