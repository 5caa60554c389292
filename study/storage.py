"""Bytes in and out of a study folder that is a local path or a ``pyarrow.fs`` URI.

A local write goes to a ``.``-prefixed temporary name (which ``pyarrow.dataset`` ignores) and is
renamed into place, so readers never see half a file; on object stores, where a single put is
atomic, it is written directly.
"""

from __future__ import annotations

import os
import uuid

import pyarrow.fs as pafs


def join(*parts: str) -> str:
    """Join path parts with ``/`` (URIs and local paths alike)."""
    return "/".join(p.rstrip("/") if i == 0 else p.strip("/") for i, p in enumerate(parts))


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """``pyarrow.fs.FileSystem.from_uri`` for a URI or a local path (relative ones too)."""
    if "://" not in str(uri):
        uri = os.path.abspath(uri)  # pyarrow takes only absolute local paths
    return pafs.FileSystem.from_uri(uri)


def is_local(uri: str) -> bool:
    """Whether ``uri`` is a path on this machine's file system (not an object store)."""
    return filesystem(uri)[0].type_name == "local"


def put_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` atomically: temp file + rename locally, one put on stores."""
    fs, path = filesystem(uri)
    parent, _, name = path.rpartition("/")
    fs.create_dir(parent, recursive=True)
    if fs.type_name != "local":
        with fs.open_output_stream(path) as out:
            out.write(data)
        return
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:8]}.tmp"  # "."-prefixed: datasets skip it
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    fs.move(tmp, path)


def get_bytes(uri: str) -> bytes | None:
    """The bytes at ``uri``, or None when there is no such file."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


def is_dir(uri: str) -> bool:
    """Whether ``uri`` names an existing folder."""
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory
