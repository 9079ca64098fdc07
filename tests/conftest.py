"""Fixtures every test folder may use: servers on 127.0.0.1 and the synthetic project (tests/transport.py)."""

from tests.transport import (  # noqa: F401 - fixtures
    file_server,
    moto,
    payload,
    policy,
    project,
    project_warehouse,
    real_warehouse,
    sleeps,
    tiny_warehouse,
    tutorial_project,
)
