"""A local cluster: controller, agents and gateway as processes on this machine.

``LocalCluster(config, workdir).start()`` materialises the families the apps use (digits
from the package, stand-ins generated into the cache), builds one model repository every
agent serves from (hard links), writes the families' profiles, starts the controller, the
agents (joined to it) and the gateway, deploys the apps and waits until every app is served
from its primary and every warm backup is loaded. ``stop()`` ends them all.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faillite.launch.config import ClusterConfig, NodeConfig
from faillite.launch.http import http_json
from faillite.launch.process import AgentProcess, LaunchError, ManagedProcess
from faillite.profiler.format import ProfileSet, save_profiles
from faillite.zoo.catalog import builtin_family_names, estimated_manifest_profiles, load_builtin_family
from faillite.zoo.manifest import FamilyManifest
from faillite.zoo.repository import add_variant
from faillite.zoo.resolve import resolve

__all__ = ["LocalCluster"]

_CONTROLLER_READY = re.compile(r"faillite controller ready on (?P<url>http://\S+)")
_GATEWAY_READY = re.compile(r"faillite gateway ready on (?P<url>http://\S+)")


class LocalCluster:
    def __init__(
        self,
        config: ClusterConfig,
        workdir: Path,
        say: Callable[[str], None] = print,
        *,
        memory_margin: float = 1.0,
    ) -> None:
        self.config = config
        # Estimated memory footprints x this, in the profiles and the repository alike: agents
        # charge max(estimate, measured RSS growth), so a margin keeps tightly packed plans loadable.
        self.memory_margin = memory_margin
        self.workdir = workdir
        self.say = say
        self.manifests: dict[str, FamilyManifest] = {}
        self.controller: ManagedProcess | None = None
        self.controller_url = ""
        self.gateway: ManagedProcess | None = None
        self.gateway_url = ""
        self.agents: dict[str, AgentProcess] = {}

    # setup
    def prepare(self) -> Path:
        """Families, the shared repository and the profiles file; returns the profiles path."""
        repo = self.workdir / "models"
        profiles = []
        for family in self.config.families():
            if family in builtin_family_names():
                manifest = load_builtin_family(family)
            else:
                manifest, _ = resolve(
                    family,
                    scale=self.config.standins.scale,
                    input_px=self.config.standins.input_px,
                    macs=self.config.standins.macs,
                    progress=lambda msg: self.say(f"  {msg}"),
                )
            self.manifests[family] = manifest
            estimated = estimated_manifest_profiles(manifest)
            if self.memory_margin != 1.0:
                estimated = tuple(
                    p.model_copy(update={"memory_bytes": math.ceil(p.memory_bytes * self.memory_margin)})
                    for p in estimated
                )
            profiles.extend(estimated)
            for p in estimated:
                add_variant(repo, manifest, p.variant, memory_bytes=p.memory_bytes)
        path = self.workdir / "profiles.json"
        save_profiles(
            ProfileSet.model_validate(
                {
                    "machine": {
                        "hostname": os.uname().nodename,
                        "cpu_count": os.cpu_count() or 1,
                        "onnxruntime": "estimated",
                        "intra_op_threads": 1,
                    },
                    "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "variants": [p.model_dump() for p in profiles],
                }
            ),
            path,
        )
        return path

    def start(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        profiles = self.prepare()
        self.start_controller(profiles)
        self.start_agents(list(self.config.nodes))
        self.wait_nodes_alive(deadline)
        if self.config.gateway:
            self.start_gateway()
        if self.config.apps:
            self.deploy([a.model_dump(mode="json", exclude_none=True) for a in self.config.apps])
            self.wait_deployed(deadline)

    def start_controller(self, profiles: Path, port: int = 0) -> str:
        c = self.config.controller
        argv = [
            sys.executable,
            "-m",
            "faillite",
            "controller",
            "--port",
            str(port),
            "--state",
            str(self.workdir / "controller.sqlite"),
            "--profiles",
            str(profiles),
            *self._manifest_args(),
            *(
                []
                if c.heartbeat_interval_ms is None
                else ["--heartbeat-interval-ms", str(c.heartbeat_interval_ms)]
            ),
            *(
                []
                if c.heartbeat_timeout_ms is None
                else ["--heartbeat-timeout-ms", str(c.heartbeat_timeout_ms)]
            ),
            "--policy",
            c.policy,
            "--method",
            c.method,
            *([] if c.progressive else ["--no-progressive"]),
        ]
        logs = self.workdir / "logs"
        runs = len(list(logs.glob("controller*.log"))) if logs.is_dir() else 0
        log = logs / (
            "controller.log" if runs == 0 else f"controller-{runs + 1}.log"
        )  # keep earlier runs' logs
        self.controller = ManagedProcess(argv, log, env=self._env())
        self.controller.start()
        self.controller_url = self.controller.wait_for(_CONTROLLER_READY, 60).group("url")
        return self.controller_url

    def _manifest_args(self) -> list[str]:
        """The families' manifests: which of them may share a warm fallback (task and signature)."""
        dirs = [str(m.directory) for m in self.manifests.values() if m.directory is not None]
        return ["--manifests", *dirs] if dirs else []

    def start_agents(self, nodes: list[NodeConfig], timeout: float = 60.0) -> None:
        """Start the agents together (each takes a second of imports), then wait for each."""
        started = []
        for node in nodes:
            extra = ["--controller", self.controller_url, "--cores", str(node.cores)]
            if node.domain:
                extra += ["--domain", node.domain]
            agent = AgentProcess(
                node.id,
                self.workdir / "models",
                node.memory,
                self.workdir / "logs" / f"agent-{node.id}.log",
                token=self.config.token,
                extra_args=extra,
            )
            agent.start()
            self.agents[node.id] = agent
            started.append(agent)
        for agent in started:
            agent.wait_ready(timeout)

    def start_gateway(self) -> str:
        argv = [
            sys.executable,
            "-m",
            "faillite",
            "gateway",
            "--controller",
            self.controller_url,
            "--port",
            "0",
        ]
        self.gateway = ManagedProcess(argv, self.workdir / "logs" / "gateway.log", env=self._env())
        self.gateway.start()
        self.gateway_url = self.gateway.wait_for(_GATEWAY_READY, 60).group("url")
        return self.gateway_url

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.config.token:
            env["FAILLITE_TOKEN"] = self.config.token
        return env

    def deploy(self, apps: list[dict[str, Any]]) -> Any:
        status, body = http_json(
            "POST", f"{self.controller_url}/v1/apps", {"apps": apps}, token=self.config.token
        )
        if status != 201:
            raise LaunchError(f"deploying the apps failed (HTTP {status}): {body.get('error', body)}")
        return body

    # waiting
    def nodes(self) -> list[dict[str, Any]]:
        return http_json("GET", f"{self.controller_url}/v1/nodes")[1]

    def apps(self) -> list[dict[str, Any]]:
        return http_json("GET", f"{self.controller_url}/v1/apps")[1]

    def wait_nodes_alive(self, deadline: float, nodes: list[str] | None = None) -> None:
        wanted = set(nodes or [n.id for n in self.config.nodes])
        self._wait(
            lambda: wanted <= {n["id"] for n in self.nodes() if n["state"] == "alive"},
            deadline,
            f"nodes {sorted(wanted)} to join",
        )

    def deployed(self) -> bool:
        """Every app served from its planned primary, every warm backup loaded."""
        loaded = {(n["id"], v) for n in self.nodes() if n["state"] == "alive" for v in n["loaded"]}
        for app in self.apps():
            if app["state"] != "primary":
                return False
            backup = app["backup"]
            if (
                backup is not None
                and backup["mode"] == "warm"
                and (backup["node"], backup["variant"]) not in loaded
            ):
                return False
        return True

    def wait_deployed(self, deadline: float) -> None:
        self._wait(self.deployed, deadline, "every app to be served from its primary and protected")

    def _wait(self, condition: Callable[[], bool], deadline: float, what: str) -> None:
        while not condition():
            if time.monotonic() > deadline:
                raise LaunchError(f"timed out waiting for {what}")
            for process in [self.controller, *self.agents.values()]:
                if process is not None and not process.alive():
                    raise LaunchError(f"{process.argv[3]} exited; see {process.log_path}")
            time.sleep(0.02)

    # failures
    def kill_node(self, node: str, signum: int = signal.SIGKILL) -> int:
        agent = self.agents[node]
        pid = agent.pid
        agent.signal(signum)
        return pid

    def restart_node(self, node: str) -> AgentProcess:
        old = self.agents.pop(node)
        old.stop(timeout=2)
        config = next(n for n in self.config.nodes if n.id == node)
        self.start_agents([config])
        return self.agents[node]

    def restart_controller(self, signum: int = signal.SIGKILL) -> str:
        """Kill the controller and start a new one on the same port and state file."""
        assert self.controller is not None
        port = int(self.controller_url.rsplit(":", 1)[1])
        self.controller.signal(signum)
        self.controller.stop(timeout=5)
        return self.start_controller(self.workdir / "profiles.json", port=port)

    def stop(self) -> None:
        # The controller first: agents leaving one by one must not look like failures.
        for process in [self.gateway, self.controller, *self.agents.values()]:
            if process is not None:
                if process.alive():
                    process.signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
                process.stop(timeout=5)

    def describe(self) -> dict[str, Any]:
        return {
            "controller": self.controller_url,
            "gateway": self.gateway_url or None,
            "nodes": [{"id": n, "url": a.url, "pid": a.pid} for n, a in self.agents.items()],
            "apps": [a.name for a in self.config.apps],
        }
