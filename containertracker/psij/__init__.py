"""PSI/J support: the ``containertracker`` executor for psij-python (``pip install
containertracker[psij]``).

``psij.JobExecutor.get_instance("containertracker", url="docker")`` finds it through
``psij-descriptors/containertracker_descriptor.py``; importing this package directly works
too. See the README's "Using it from PSI/J".
"""

from __future__ import annotations

from containertracker.psij._executor import (
    DEFAULT_IMAGE,
    DEFAULT_SESSION,
    ContainerTrackerExecutorConfig,
    ContainerTrackerJobExecutor,
)
from containertracker.psij._mapping import IMAGE_ATTRIBUTE, spec_to_template

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_SESSION",
    "IMAGE_ATTRIBUTE",
    "ContainerTrackerExecutorConfig",
    "ContainerTrackerJobExecutor",
    "spec_to_template",
]
