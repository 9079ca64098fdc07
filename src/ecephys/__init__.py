"""ecephys: fast, dependable access to Neuropixels extracellular-electrophysiology sessions."""

from ecephys import errors
from ecephys.catalog import get_sessions
from ecephys.nwb_session import NWBSession, open_nwb
from ecephys.project import EcephysProjectCache, ProjectCache
from ecephys.session import EcephysSession, open_session
from ecephys.session_id import SessionId

__version__ = "0.1.0.dev0"

__all__ = [
    "EcephysProjectCache",
    "EcephysSession",
    "NWBSession",
    "ProjectCache",
    "SessionId",
    "__version__",
    "errors",
    "get_sessions",
    "open_nwb",
    "open_session",
]
