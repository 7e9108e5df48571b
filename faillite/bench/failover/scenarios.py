"""The failover benchmark's scenarios: which apps, on how many nodes, with how much memory.

- ``digits``: the family this project trains itself (accuracy measured on a held-out split),
  six apps on three nodes.
- ``paper``: 27 apps whose primaries are stand-ins of published models from ten families
  (accuracy: PUBLISHED ImageNet top-1), on six nodes, stand-ins scaled down to ``scale`` of the
  published parameter count and MACs.

Memory: every primary is pinned (largest first, to the node with the least primary memory so
far); each node's budget is ``(1 + headroom)`` x the largest node's primary memory, so the
headroom is the spare memory every node has for backups. Full replication would need a
headroom near 100 %; paper's default (25 %) is far below it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from faillite.controller.config import make_detector
from faillite.controller.liveness import Detector
from faillite.controller.planning import AppSpec, build_families, build_instance
from faillite.launch.config import ClusterConfig, ControllerSection, NodeConfig, StandinSection
from faillite.placement import Instance, Node, PlannerParams
from faillite.profiler.format import VariantProfile
from faillite.zoo.catalog import builtin_family_names, estimated_manifest_profiles, load_builtin_family
from faillite.zoo.resolve import resolve

__all__ = ["DEFAULT_HEADROOM", "SCENARIOS", "AppDef", "Scenario", "scenario"]

DEFAULT_HEADROOM = 0.25


@dataclass(frozen=True)
class AppDef:
    name: str
    family: str
    variant: str
    critical: bool = False
    weight: float = 1.0
    slo_ms: float = 800.0
    rate: float = 5.0  # requests per second offered by the open-loop workload (Poisson)


@dataclass(frozen=True)
class Scenario:
    name: str
    nodes: int
    apps: tuple[AppDef, ...]
    scale: float = 0.02  # stand-ins: this fraction of the published parameters (and MACs)
    input_px: int = 64
    macs: str = "scaled"  # stand-ins' MACs: "scaled" by ``scale``, or "input": the model's at input_px
    heartbeat_interval_ms: float | None = None  # None: the controller's defaults (adaptive detector)
    heartbeat_timeout_ms: float | None = None
    accuracy_source: str = "published"
    default_headroom: float = DEFAULT_HEADROOM
    # Estimated footprints x this in the profiles and the agents' repository (see LocalCluster).
    # Agents charge max(estimate, measured RSS growth). Since they trim the heap after a load and
    # keep weights in huge pages, the measured growth is mostly below the estimate (file +
    # min(file/2, 32 MiB) + 1 MiB; ResNet-50: 97.8 MiB measured, 135 MiB estimated), but a load
    # measured while other loads run can read a few MiB over it (EfficientNet-B0: 40.1 MiB for a
    # 31.3 MiB estimate), and a tightly packed node then refuses its last model for good.
    memory_margin: float = 1.1
    _profiles: dict[str, tuple[VariantProfile, ...]] = field(default_factory=dict, compare=False, repr=False)

    def profiles(self) -> dict[str, tuple[VariantProfile, ...]]:
        """Estimated profiles of every variant of the families used (as the cluster writes them)."""
        if not self._profiles:
            for family in sorted({a.family for a in self.apps}):
                if family in builtin_family_names():
                    manifest = load_builtin_family(family)
                else:
                    manifest, _ = resolve(
                        family,
                        scale=self.scale,
                        input_px=self.input_px,
                        macs=self.macs,
                        progress=lambda _m: None,
                    )
                self._profiles[family] = tuple(
                    p.model_copy(update={"memory_bytes": math.ceil(p.memory_bytes * self.memory_margin)})
                    for p in estimated_manifest_profiles(manifest)
                )
        return self._profiles

    def variant(self, family: str, name: str) -> VariantProfile:
        return next(p for p in self.profiles()[family] if p.variant == name)

    def primaries(self) -> dict[str, str]:
        """app -> node: largest primary first, onto the node with the least primary memory."""
        load = {self.node_id(i): 0 for i in range(self.nodes)}
        out: dict[str, str] = {}
        for app in sorted(self.apps, key=lambda a: (-self.variant(a.family, a.variant).memory_bytes, a.name)):
            node = min(load, key=lambda n: (load[n], n))
            out[app.name] = node
            load[node] += self.variant(app.family, app.variant).memory_bytes
        return out

    def node_id(self, i: int) -> str:
        return f"edge-{i + 1}"

    def budget(self, headroom: float) -> int:
        used: dict[str, int] = {}
        for app in self.apps:
            node = self.primaries()[app.name]
            used[node] = used.get(node, 0) + self.variant(app.family, app.variant).memory_bytes
        return math.ceil(max(used.values()) * (1 + headroom))

    def specs(self) -> list[AppSpec]:
        where = self.primaries()
        return [
            AppSpec(
                name=a.name,
                family=a.family,
                variant=a.variant,
                slo_ms=a.slo_ms,
                weight=a.weight,
                critical=a.critical,
                rate=a.rate,
                node=where[a.name],
            )
            for a in self.apps
        ]

    def config(self, policy: str, *, headroom: float, progressive: bool = True) -> ClusterConfig:
        budget = self.budget(headroom)
        return ClusterConfig(
            nodes=tuple(NodeConfig(id=self.node_id(i), memory=budget, cores=1) for i in range(self.nodes)),
            apps=tuple(self.specs()),
            standins=StandinSection(scale=self.scale, input_px=self.input_px, macs=self.macs),  # type: ignore[arg-type]
            controller=ControllerSection(
                heartbeat_interval_ms=self.heartbeat_interval_ms,
                heartbeat_timeout_ms=self.heartbeat_timeout_ms,
                policy=policy,
                method="exact",
                progressive=progressive,
            ),
            gateway=False,
        )

    def instance(self, headroom: float) -> Instance:
        """The planner's instance the controller builds for this scenario (same params)."""
        families = build_families(p for ps in self.profiles().values() for p in ps)
        budget = self.budget(headroom)
        nodes = [Node(self.node_id(i), budget, 1.0) for i in range(self.nodes)]
        params = PlannerParams(detection_ms=self.detector().quiet_timeout_s() * 1000, switch_ms=5.0)
        return build_instance(self.specs(), nodes, families, params)

    def detector(self) -> Detector:
        """The controller's failure detector for this scenario (its defaults unless overridden)."""
        return make_detector(self.heartbeat_interval_ms, self.heartbeat_timeout_ms)

    def memory_of(self, family: str, variant: str) -> int:
        return self.variant(family, variant).memory_bytes

    def accuracy_of(self, family: str, variant: str) -> float:
        return self.variant(family, variant).accuracy


def _digits() -> Scenario:
    # rates: cameras and sensors reading digits (door codes at 10/s, meters and tags in bursts)
    apps = (
        AppDef("digits-door", "digits", "digits-mlp-256x128", critical=True, weight=3, slo_ms=20, rate=10),
        AppDef("digits-meter", "digits", "digits-mlp-64", critical=True, weight=2, slo_ms=20, rate=5),
        AppDef("digits-forms", "digits", "digits-mlp-256x128", slo_ms=20, rate=20),
        AppDef("digits-mail", "digits", "digits-mlp-64", slo_ms=20, rate=2),
        AppDef("digits-cheque", "digits", "digits-mlp-256x128", slo_ms=20, rate=30),
        AppDef("digits-tags", "digits", "digits-mlp-16", slo_ms=20, rate=8),
    )
    # Every digits variant is ~1 MiB once loaded (the session's own overhead dominates), so a
    # smaller backup saves almost nothing: this scenario gets 100 % headroom by default.
    return Scenario("digits", 3, apps, accuracy_source="measured", default_headroom=1.0)


def _paper() -> Scenario:
    # rates (requests/s, Poisson): cameras at 6-25 (critical ones, light models at high rates),
    # periodic sensors and batch-like apps at 2-8; 167 requests/s in all, which keeps the
    # benchmark's own processes near 45 % of this 2-core box outside failures (measured)
    c = {"critical": True, "weight": 3.0}
    apps = (
        AppDef("resnet152", "ResNet", "resnet152-imagenet1k_v2", **c, rate=6),
        AppDef("resnet101", "ResNet", "resnet101-imagenet1k_v2", rate=4),
        AppDef("resnet50", "ResNet", "resnet50-imagenet1k_v2", rate=6),
        AppDef("resnet34", "ResNet", "resnet34-imagenet1k_v1", rate=2),
        AppDef("effnet-b4", "EfficientNet", "efficientnet_b4-imagenet1k_v1", **c, rate=8),
        AppDef("effnet-b3", "EfficientNet", "efficientnet_b3-imagenet1k_v1", rate=5),
        AppDef("effnet-v2s", "EfficientNet", "efficientnet_v2_s-imagenet1k_v1", rate=3),
        AppDef("effnet-b1", "EfficientNet", "efficientnet_b1-imagenet1k_v2", **c, rate=15),
        AppDef("regnet-y3.2gf", "RegNet", "regnet_y_3_2gf-imagenet1k_v2", rate=4),
        AppDef("regnet-x3.2gf", "RegNet", "regnet_x_3_2gf-imagenet1k_v2", rate=2),
        AppDef("regnet-y1.6gf", "RegNet", "regnet_y_1_6gf-imagenet1k_v2", rate=6),
        AppDef("regnet-y800mf", "RegNet", "regnet_y_800mf-imagenet1k_v2", rate=8),
        AppDef("convnext-s", "ConvNeXt", "convnext_small-imagenet1k_v1", **c, rate=6),
        AppDef("convnext-t", "ConvNeXt", "convnext_tiny-imagenet1k_v1", rate=3),
        AppDef("swin-s", "Swin", "swin_s-imagenet1k_v1", rate=2),
        AppDef("swin-t", "Swin", "swin_t-imagenet1k_v1", **c, rate=6),
        AppDef("swin-v2-t", "Swin", "swin_v2_t-imagenet1k_v1", rate=4),
        AppDef("mobilenet-v3l", "MobileNet", "mobilenet_v3_large-imagenet1k_v2", **c, rate=25),
        AppDef("mobilenet-v2", "MobileNet", "mobilenet_v2-imagenet1k_v2", rate=10),
        AppDef("densenet161", "DenseNet", "densenet161-imagenet1k_v1", rate=2),
        AppDef("densenet201", "DenseNet", "densenet201-imagenet1k_v1", rate=3),
        AppDef("densenet121", "DenseNet", "densenet121-imagenet1k_v1", rate=5),
        AppDef("resnext101", "ResNeXt", "resnext101_64x4d-imagenet1k_v1", rate=2),
        AppDef("resnext50", "ResNeXt", "resnext50_32x4d-imagenet1k_v2", rate=4),
        AppDef("regnet-y8gf", "RegNet", "regnet_y_8gf-imagenet1k_v2", rate=3),
        AppDef("shufflenet", "ShuffleNet", "shufflenet_v2_x2_0-imagenet1k_v1", rate=15),
        AppDef("mnasnet", "MNASNet", "mnasnet1_3-imagenet1k_v1", rate=8),
    )
    # Published sizes (parameters, so memory and load times, of the real models) at a 32 px input
    # (MACs of the real model at that input), so that this 2-core box can afford the inference.
    return Scenario("paper", 6, apps, scale=1.0, input_px=32, macs="input")


SCENARIOS: Mapping[str, Scenario] = {"digits": _digits(), "paper": _paper()}


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"no scenario {name!r} (scenarios: {', '.join(SCENARIOS)})") from None
