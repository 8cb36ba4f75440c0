"""Folder and file modes, and locked temporary files, for the lake and the warehouse build.

By default everything the pipeline creates is private to the user that runs it: folders get
mode 0o700 and files 0o600. `GROUP_READABLE_MODES` (0o750 and 0o640, the
VSCOPE_SHARE_WITH_GROUP setting) also lets the group read, for a BI tool that runs as another
user of that group. Neither set lets other users in. The umask can only remove more bits, so
under umask 077 the group modes give 0o700 and 0o600. Folders that already exist keep their
mode, so an operator who prepared the data folder decides who may list it.

A writer builds its output under a temporary name and keeps an exclusive `flock` on that
temporary file or folder until it has renamed or removed it. The kernel drops the lock when the
process dies, even on SIGKILL, so `remove_abandoned` can tell a crashed writer's leftover
(lock free) from a live writer's work (lock held) without guessing from ages or process ids.

NOTE: `flock` is reliable on local file systems. On NFS, Linux emulates it with byte-range
locks, which work across clients only when the server supports them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


@dataclass(frozen=True)
class FileModes:
    """Permission bits given to the files and to the folders that a writer creates."""

    file: int
    folder: int


PRIVATE_MODES = FileModes(file=PRIVATE_FILE_MODE, folder=PRIVATE_DIR_MODE)
# The group may read files and list folders. It never writes, and other users get nothing.
GROUP_READABLE_MODES = FileModes(file=0o640, folder=0o750)


def file_modes(share_with_group: bool) -> FileModes:
    """Return the modes for the VSCOPE_SHARE_WITH_GROUP setting."""
    return GROUP_READABLE_MODES if share_with_group else PRIVATE_MODES


# A claim is retried only when `remove_abandoned` in another process deleted the new entry in
# the instant before it was locked, so a second attempt is expected to succeed.
_CLAIM_ATTEMPTS = 3


def make_private_dirs(folder: str | os.PathLike[str]) -> None:
    """Create `folder` and its missing parents with mode 0o700. Existing folders keep their mode."""
    make_dirs(folder, mode=PRIVATE_DIR_MODE)


def make_dirs(folder: str | os.PathLike[str], *, mode: int) -> None:
    """Create `folder` and its missing parents with `mode`. Existing folders keep their mode."""
    path = Path(folder)
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for new_folder in reversed(missing):
        try:
            new_folder.mkdir(mode=mode)
        except FileExistsError:
            # Another writer created it first; a file of that name fails later with a clear error.
            continue


@contextmanager
def claim_temporary_file(
    folder: Path, prefix: str, suffix: str = ".tmp", *, mode: int = PRIVATE_FILE_MODE
) -> Iterator[Path]:
    """Create the new empty file `<folder>/<prefix><random hex><suffix>` with `mode`.

    The file is locked until the block exits. The caller renames or removes it, and a rename
    keeps the mode. The lock only marks the file as in use for `remove_abandoned`.
    """
    path, fd = _claim(folder, prefix, suffix, mode=mode, directory=False)
    try:
        yield path
    finally:
        os.close(fd)


@contextmanager
def claim_temporary_dir(folder: Path, prefix: str, suffix: str = ".tmp") -> Iterator[Path]:
    """Create the new folder `<folder>/<prefix><random hex><suffix>` with mode 0o700.

    The folder is locked while the block runs and removed with its contents when it exits.
    """
    path, fd = _claim(folder, prefix, suffix, mode=PRIVATE_DIR_MODE, directory=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def remove_abandoned(folder: Path, prefix: str) -> list[Path]:
    """Remove the files and folders in `folder` named `<prefix>*` that no live writer locks.

    Returns the removed paths. An entry whose lock is held belongs to a writer that is still
    running and is left alone.
    """
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(prefix) and _remove_if_unlocked(entry):
            removed.append(entry)
    return removed


def _claim(
    folder: Path, prefix: str, suffix: str, *, mode: int, directory: bool
) -> tuple[Path, int]:
    for _ in range(_CLAIM_ATTEMPTS):
        path = folder / f"{prefix}{uuid.uuid4().hex}{suffix}"
        if directory:
            path.mkdir(mode=mode)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        # Blocks only while `remove_abandoned` holds the lock to delete this very entry.
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _is_linked(path, fd):
            return path, fd
        os.close(fd)
    raise FileExistsError(
        f"failed to create a temporary {'folder' if directory else 'file'} {prefix}*{suffix} "
        f"in {folder}: another process removed it {_CLAIM_ATTEMPTS} times in a row. Check "
        "that no other program deletes files in that folder, then run again."
    )


def _is_linked(path: Path, fd: int) -> bool:
    try:
        current = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)


def _remove_if_unlocked(entry: Path) -> bool:
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError as error:
        # A symbolic link (ELOOP) or an unreadable entry was not made by a writer: leave it.
        log.warning("left %s in place: %s", entry, error)
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not _is_linked(entry, fd):
            return False
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    finally:
        os.close(fd)
    log.info("removed %s, left by a writer that stopped before finishing", entry)
    return True
