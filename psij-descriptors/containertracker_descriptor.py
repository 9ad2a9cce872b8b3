"""psij-python finds the ``containertracker`` executor through this descriptor.

psij imports every module of the ``psij-descriptors`` namespace package on each ``sys.path``
entry and loads ``cls`` from that same entry, so this directory is installed next to the
``containertracker`` package (pyproject.toml).
"""

from packaging.version import Version
from psij.descriptor import Descriptor

__PSI_J_EXECUTORS__ = [
    Descriptor(
        name="containertracker",
        nice_name="containertracker (containers on Docker, Podman, a swarm)",
        version=Version("0.1.0"),
        cls="containertracker.psij.plugin.ContainerTrackerJobExecutor",
    )
]
