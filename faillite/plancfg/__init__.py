"""faillite.plancfg: the planner's config files (YAML) and profiles, turned into an ``Instance``."""

from faillite.plancfg.load import ConfigError, load_apps, load_cluster, load_instance, variant_from_profile
from faillite.plancfg.schema import AppsFile, AppSpec, ClusterFile, NodeSpec

__all__ = [
    "AppSpec",
    "AppsFile",
    "ClusterFile",
    "ConfigError",
    "NodeSpec",
    "load_apps",
    "load_cluster",
    "load_instance",
    "variant_from_profile",
]
