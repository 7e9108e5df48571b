"""The profiler: what each variant costs on this machine, in the format the planner reads."""

from faillite.profiler.format import (
    PROFILE_SCHEMA,
    MachineInfo,
    ProfileError,
    ProfileSet,
    VariantProfile,
    load_profiles,
    save_profiles,
)

__all__ = [
    "PROFILE_SCHEMA",
    "MachineInfo",
    "ProfileError",
    "ProfileSet",
    "VariantProfile",
    "load_profiles",
    "save_profiles",
]
