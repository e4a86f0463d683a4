"""A full disk, however the writer said so: one `DiskFullError` ("no space left on DEVICE (mounted at
...) writing PATH") from Python's own errno 28, safetensors' message, or torch's C++ stream, which says
only "basic_ios::clear: iostream error" (`disk_full_error`, asked by every writer of `fileio`).

>>> import errno
>>> disk_full_error(OSError(errno.ENOSPC, "No space left on device"), "/") is not None
True
>>> disk_full_error(ValueError("bad value"), "/") is None
True
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from .errors import PromptRetrieverError


class DiskFullError(PromptRetrieverError, OSError):
    """A write that failed because its filesystem is full (or the user's quota is spent); the message names
    the device, where it is mounted and what was being written."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = errno.ENOSPC


_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How writers that hide the errno say it: safetensors ("No space left on device (os error 28)"), the
# errno text itself, and torch's C++ stream, which says no more than "basic_ios::clear: iostream error".
_FULL_WORDS = ("no space left on device", "os error 28", "disk quota exceeded", "storagefull")
_STREAM_WORDS = ("basic_ios::clear", "iostream error", "unexpected pos")
LOW_SPACE_BYTES = 8 << 20  # a stream error with less than this free where it wrote is a full disk
_OCTAL = re.compile(r"\\([0-7]{3})")  # /proc/self/mounts writes a space in a mount point as \040


def _mount_of(path: Path) -> tuple[str, str]:
    """(the device, its mount point) of the filesystem holding `path`, e.g. ("/dev/sda1", "/")."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    device = "the device"
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            for line in fh:  # the last entry for a mount point is the one in effect
                fields = line.split()
                if len(fields) > 1 and _OCTAL.sub(lambda m: chr(int(m[1], 8)), fields[1]) == str(p):
                    device = fields[0]
    except OSError:  # not Linux
        pass
    return device, str(p)


def _free_bytes(path: Path) -> int | None:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def disk_full_error(exc: BaseException, where: str | Path, writing: str | Path | None = None) -> DiskFullError | None:
    """The `DiskFullError` that `exc`, raised while writing at `where`, really is; None when it is none, or
    is one of this toolkit's errors already (a `DiskFullError` from an inner write included).

    Yes when `exc` or an error it came from is an `OSError` with errno ENOSPC or EDQUOT, or says so in its
    text (safetensors); and when it is a stream error with no errno (torch's "basic_ios::clear") while
    less than `LOW_SPACE_BYTES` are free at `where`. Ask before removing what the failed write left."""
    if not isinstance(exc, Exception) or isinstance(exc, PromptRetrieverError):
        return None
    full = False
    seen: BaseException | None = exc
    for _ in range(8):  # the error and what it came from
        if seen is None:
            break
        text = str(seen).lower()
        if (isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS) or any(w in text for w in _FULL_WORDS):
            full = True
            break
        seen = seen.__cause__ or seen.__context__
    if not full and any(w in str(exc).lower() for w in _STREAM_WORDS):
        free = _free_bytes(Path(where))
        full = free is not None and free < LOW_SPACE_BYTES
    if not full:
        return None
    device, mount = _mount_of(Path(where))
    return DiskFullError(
        f"no space left on {device} (mounted at {mount}) writing {writing or where}: "
        "free some space there, or write somewhere else"
    )
