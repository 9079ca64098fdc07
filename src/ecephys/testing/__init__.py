"""Public test helpers: synthetic sessions and project folders in the AllenSDK's layout.

``make_session`` writes a session file and its probe LFP files with plain h5py;
``make_dynamic_routing_session`` writes an npc_sessions-like NWB file with pynwb;
``make_project`` writes several sessions plus the project tables (``sessions.csv`` …), which
the warehouse emulator (:mod:`ecephys.testing.warehouse`) serves. Tests, benchmarks and the
demo run on them without downloads and without the AllenSDK.
"""

from ecephys.testing.dynamic_routing import make_dynamic_routing_session
from ecephys.testing.project import ProjectSession, make_project, make_tutorial_project
from ecephys.testing.synthetic import SessionFiles, make_session

__all__ = [
    "ProjectSession",
    "SessionFiles",
    "make_dynamic_routing_session",
    "make_project",
    "make_session",
    "make_tutorial_project",
]
