"""Servers and payloads for the cache tests."""

from tests.transport import (  # noqa: F401 - fixtures
    file_server,
    payload,
    policy,
    project,
    project_warehouse,
    sleeps,
    tiny_warehouse,
)
