"""Reading the project's files safely: only regular files, of a sane size, and every
OS error as one sentence with the path.

A models.mp that is /dev/zero, a FIFO, a directory, a symlink loop or an unreadable
file must not hang mf, fill its memory or end in a traceback. The readers of the
project's files (store.py for the migrations directory, the language's models
reader, config.py) open through here and raise their own MfError kind.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Optional

MAX_FILE_BYTES = 256 * 1024 * 1024  # no models.mp or migration file comes near this

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.EACCES:
        return "permission denied"
    return exc.strerror or type(exc).__name__


def read_file(path: str, error, *, shown: Optional[str] = None, limit: int = MAX_FILE_BYTES,
              missing_ok: bool = False) -> Optional[bytes]:
    """The bytes of the regular file ``path``; ``error`` (an MfError class) when it is not
    one, is larger than ``limit`` or cannot be read. None when it does not exist and
    ``missing_ok``, else FileNotFoundError propagates for the caller to word."""
    shown = shown or path
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    except OSError as exc:
        raise error(f"{shown}: cannot open it ({describe_os_error(exc)})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{shown}: is {kind_of(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise error(f"{shown}: is {info.st_size} bytes, more than the {limit} bytes mf reads")
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:  # grew while being read
                raise error(f"{shown}: is more than the {limit} bytes mf reads")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"{shown}: cannot read it ({describe_os_error(exc)})") from None
    finally:
        os.close(fd)


def list_directory(path: str, error, *, shown: Optional[str] = None) -> Optional[list]:
    """The entries of directory ``path``; None when it does not exist; ``error`` when it is
    something else or cannot be read."""
    shown = shown or path
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise error(f"{shown}: is not a directory") from None
    except OSError as exc:
        raise error(f"{shown}: cannot list it ({describe_os_error(exc)})") from None
