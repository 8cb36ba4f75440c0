"""Recognise a write that failed because the disk, the quota or the file size limit is full."""

from __future__ import annotations

import errno
import os

# ENOSPC: no space left on the device, EDQUOT: the user's disk quota is used up, EFBIG: the
# file would exceed the process's file size limit (RLIMIT_FSIZE) or the file system's.
STORAGE_FULL_ERRNOS: frozenset[int] = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

# DuckDB reports these conditions as text only, because its exceptions carry no errno. The text
# is the C library's description, as `os.strerror` returns it (checked with DuckDB 2.0).
_STORAGE_FULL_TEXTS: tuple[str, ...] = tuple(os.strerror(code) for code in STORAGE_FULL_ERRNOS)


class StorageFullError(OSError):
    """A file that could not be written for lack of space. The previous version is kept."""


def storage_full_reason(error: BaseException) -> str | None:
    """Return the description of the full-storage condition behind `error`, or None.

    Follows the chain of causes, because the pipeline wraps library errors in its own.
    """
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in STORAGE_FULL_ERRNOS:
            return os.strerror(current.errno)
        text = str(current)
        for description in _STORAGE_FULL_TEXTS:
            if description in text:
                return description
        current = current.__cause__ or current.__context__
    return None


def storage_full_error(
    path: str | os.PathLike[str], reason: str, folder: str | os.PathLike[str]
) -> StorageFullError:
    """Build the error for `path`, which could not be written because storage is full.

    `folder` is the data folder whose file system needs free space.
    """
    return StorageFullError(
        f"failed to write {os.fspath(path)}: {reason}. The previous version was kept. Free "
        f"space on the file system that contains {os.fspath(folder)} (or raise the disk quota "
        "or file size limit), then run again."
    )
