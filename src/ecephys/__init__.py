"""ecephys: fast, dependable access to Neuropixels extracellular-electrophysiology sessions."""

from ecephys import errors
from ecephys.project import EcephysProjectCache, ProjectCache
from ecephys.session import EcephysSession, open_session

__version__ = "0.1.0.dev0"

__all__ = ["EcephysProjectCache", "EcephysSession", "ProjectCache", "__version__", "errors", "open_session"]
