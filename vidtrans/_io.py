"""Small file helpers shared by every stage: atomic writes and cache dirs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to *path*; rename it onto *path* on success.

    Nothing is left behind if the body raises, and an existing file at *path*
    is only replaced once the new one is complete.  The temporary name keeps
    the final extension (tools such as ffmpeg pick the format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write *text* to *path* atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def cache_dir(*parts: str) -> Path:
    """Return (and create) ``$VIDTRANS_CACHE`` or ``~/.cache/vidtrans`` / *parts*."""
    root = os.environ.get("VIDTRANS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vidtrans"
    )
    p = Path(root, *parts)
    p.mkdir(parents=True, exist_ok=True)
    return p
