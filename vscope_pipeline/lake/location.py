"""The location of the Parquet lake: a `pyarrow.fs` file system and the lake's root on it.

A local lake is a folder (`LocalFileSystem`, root `/abs/data`). An object-storage lake is a
bucket and prefix on an S3-compatible store (`S3FileSystem`, root `bucket/prefix`). Paths given
to and returned by a `LakeLocation` are paths of its file system, always with `/` separators,
so the same code reads and lists both. DuckDB addresses the same objects by `url`:
`/abs/data/...` locally, `s3://bucket/prefix/...` on object storage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow.fs as pafs

from vscope_pipeline.secrets import Secret

UrlStyle = Literal["path", "vhost"]


@dataclass(frozen=True)
class S3Connection:
    """How to reach an S3-compatible store: endpoint URL, region, keys and URL style."""

    endpoint: str
    region: str
    access_key_id: str
    secret_access_key: Secret
    # `path` puts the bucket in the URL path (endpoint/bucket/key), `vhost` in the host name.
    url_style: UrlStyle = "path"

    @property
    def scheme(self) -> str:
        return self.endpoint.split("://", 1)[0]

    @property
    def host(self) -> str:
        """Return the endpoint's `host[:port]`, the form pyarrow and DuckDB expect."""
        return self.endpoint.split("://", 1)[1].rstrip("/")

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            access_key=self.access_key_id,
            secret_key=self.secret_access_key.reveal(),
            region=self.region,
            scheme=self.scheme,
            endpoint_override=self.host,
            force_virtual_addressing=self.url_style == "vhost",
            # The lake needs no bucket creation, and a missing bucket must fail, not appear.
            allow_bucket_creation=False,
            allow_bucket_deletion=False,
        )

    def client(self) -> Any:
        """Return a boto3 S3 client, for the conditional writes that pyarrow.fs lacks."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key.reveal(),
            config=Config(
                s3={"addressing_style": "virtual" if self.url_style == "vhost" else "path"},
                retries={"max_attempts": 5, "mode": "standard"},
            ),
        )


@dataclass(frozen=True)
class LakeLocation:
    """The lake's file system and root. `s3` is set when the lake is in a bucket."""

    filesystem: pafs.FileSystem
    root: str
    s3: S3Connection | None = None

    @classmethod
    def local(cls, folder: str | os.PathLike[str]) -> LakeLocation:
        return cls(pafs.LocalFileSystem(), os.path.abspath(os.fspath(folder)))

    @classmethod
    def bucket(cls, bucket_and_prefix: str, connection: S3Connection) -> LakeLocation:
        """Return the lake under `bucket/prefix` (no scheme, no trailing `/`)."""
        return cls(connection.filesystem(), bucket_and_prefix.strip("/"), connection)

    @property
    def is_local(self) -> bool:
        return self.s3 is None

    def path(self, relative: str) -> str:
        """Return the file system path of `relative`, a `/`-separated path under the root."""
        return f"{self.root}/{relative}" if relative else self.root

    def url(self, path: str) -> str:
        """Return how DuckDB and messages name `path`: `s3://bucket/...` in a bucket."""
        return path if self.is_local else f"s3://{path}"

    def is_file(self, path: str) -> bool:
        return self.filesystem.get_file_info(path).type == pafs.FileType.File

    def child_names(self, path: str) -> list[str]:
        """Return the names of the entries directly under `path`; none when it is missing."""
        selector = pafs.FileSelector(path, allow_not_found=True)
        return [info.base_name for info in self.filesystem.get_file_info(selector)]

    def files_under(self, path: str) -> list[str]:
        """Return the paths of every file under `path`, relative to it, in any order."""
        selector = pafs.FileSelector(path, allow_not_found=True, recursive=True)
        prefix = path.rstrip("/") + "/"
        return [
            info.path.removeprefix(prefix)
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File
        ]


LakeLike = LakeLocation | str | os.PathLike[str]


def as_lake(lake: LakeLike) -> LakeLocation:
    """Return `lake` itself, or the local lake in the folder `lake`."""
    return lake if isinstance(lake, LakeLocation) else LakeLocation.local(lake)
