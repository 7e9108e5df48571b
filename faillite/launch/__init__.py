"""Launchers: start faillite's processes on this machine and stop them cleanly."""

from faillite.launch.process import AgentProcess, LaunchError, ManagedProcess

__all__ = ["AgentProcess", "LaunchError", "ManagedProcess"]
