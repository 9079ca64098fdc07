"""Servers for the source tests (warehouse emulator, file server; moto S3 lives in test_s3)."""

from tests.transport import (  # noqa: F401 - fixtures
    file_server,
    payload,
    policy,
    project,
    project_warehouse,
    real_warehouse,
    sleeps,
    tiny_warehouse,
)
