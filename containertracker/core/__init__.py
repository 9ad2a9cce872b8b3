"""DRMAA2 semantics over container engines: ContainerTracker and its pure helpers."""
