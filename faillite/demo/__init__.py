"""``faillite demo``: the main job, runnable on one machine."""
