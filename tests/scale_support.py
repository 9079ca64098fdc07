"""A synthetic project on moto's S3, shared by the pickling and map_sessions tests."""

from __future__ import annotations

from pathlib import Path

from ecephys import EcephysProjectCache
from ecephys.testing.servers import MotoS3, upload_folder

#: Where the project sits in moto's S3.
S3_PLACE = dict(bucket="scale", prefix="cache/")


def upload_project(moto: MotoS3, project: Path) -> str:
    """Upload the project folder under ``S3_PLACE``; return moto's endpoint URL."""
    upload_folder(moto.endpoint_url, project, **S3_PLACE)
    return moto.endpoint_url


def s3_cache(endpoint_url: str, folder: Path) -> EcephysProjectCache:
    """A cache over the uploaded project, keeping its files in ``folder``."""
    return EcephysProjectCache.from_s3(folder, endpoint_url=endpoint_url, **S3_PLACE)
