"""Where uploaded files live: a small interface, so an object store can replace the local disk.

Keys are immutable: a key names one upload's bytes forever (content hash plus a random part),
so whatever serves them may cache them for good. The random part gives every upload its own
key: two offers uploading the same picture do not share a file, so deleting one offer's old
image never breaks another's.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from community.settings import Settings

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
CONTENT_TYPES = {ext: content_type for content_type, ext in EXTENSIONS.items()}
KEY = re.compile(r"^[0-9a-f]{32}-[0-9a-f]{12}\.(png|jpg|webp)$")


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    content_type: str


class Storage(ABC):
    @abstractmethod
    async def put(self, data: bytes, content_type: str) -> str:
        """Store the bytes; answer their new key."""

    @abstractmethod
    async def get(self, key: str) -> StoredFile | None:
        """The stored file, or None when the key names nothing (or is not a key at all)."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Forget the key; deleting a missing key is not an error."""

    @abstractmethod
    def url(self, key: str) -> str:
        """Where a browser fetches the file."""


def new_key(data: bytes, content_type: str) -> str:
    if content_type not in EXTENSIONS:
        raise ValueError(f"cannot store {content_type!r}")
    digest = hashlib.sha256(data).hexdigest()[:32]
    return f"{digest}-{secrets.token_hex(6)}.{EXTENSIONS[content_type]}"


def is_key(key: str) -> bool:
    return bool(KEY.match(key))


class LocalStorage(Storage):
    """Files under one directory (settings.data_dir / "media"), served by the app at /media/{key}."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")

    def _path(self, key: str) -> Path:
        # Only well-formed keys reach the disk: no path tricks through a key.
        if not is_key(key):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key[:2] / key

    async def put(self, data: bytes, content_type: str) -> str:
        key = new_key(data, content_type)
        await anyio.to_thread.run_sync(self._write, self._path(key), data)
        return key

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed: a reader never sees half a file.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> StoredFile | None:
        if not is_key(key):
            return None
        try:
            data = await anyio.to_thread.run_sync(self._path(key).read_bytes)
        except FileNotFoundError:
            return None
        return StoredFile(data=data, content_type=CONTENT_TYPES[key.rsplit(".", 1)[1]])

    async def delete(self, key: str) -> None:
        if is_key(key):
            await anyio.to_thread.run_sync(lambda: self._path(key).unlink(missing_ok=True))

    def url(self, key: str) -> str:
        return f"{self.base_url}/media/{key}"


def storage_for(settings: Settings) -> Storage:
    """The one place that decides where files go."""
    return LocalStorage(settings.data_dir / "media", settings.base_url)
