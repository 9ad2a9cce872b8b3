"""The module psij's descriptor names (``psij-descriptors/containertracker_descriptor.py``).

psij loads an executor's module from its file path as a fresh module object, outside
``sys.modules``; defining the executor here would make a second class, and a config built
from ``containertracker.psij`` would not be the one it checks for. So this file only
re-exports the one class.
"""

from containertracker.psij._executor import ContainerTrackerJobExecutor

__all__ = ["ContainerTrackerJobExecutor"]
