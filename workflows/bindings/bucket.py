"""``BUCKET``: R2-style object storage on Django's storage API.

Any Django storage backend works (filesystem by default; S3 through django-storages, by
configuration), because only the storage API is used: open, save, delete, exists, size,
listdir, get_modified_time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages
from django.utils.module_loading import import_string


class BucketObject:
    """What ``get`` returns: the body and its metadata."""

    def __init__(self, key: str, body: bytes, uploaded: datetime | None) -> None:
        self.key = key
        self._body = body
        self.size = len(body)
        self.uploaded = uploaded

    def read(self) -> bytes:
        return self._body

    def array_buffer(self) -> bytes:
        return self._body

    def text(self) -> str:
        return self._body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self._body)

    def __repr__(self) -> str:
        return f"<BucketObject {self.key} {self.size} bytes>"


def check_key(key: object) -> str:
    if (
        not isinstance(key, str)
        or not key
        or key.startswith("/")
        or "\\" in key
        or ".." in key.split("/")
        or len(key) > 1024
    ):
        raise ValueError(f"invalid bucket key {key!r}: use 1 to 1024 characters, no leading '/', no '..' parts")
    return key


class StorageBucket:
    """Options: ``location`` (a directory, for the default filesystem storage), or ``storage``
    (the alias of one of settings.STORAGES) or ``backend`` + ``backend_options``."""

    def __init__(
        self,
        location: str | None = None,
        storage: str | None = None,
        backend: str | None = None,
        backend_options: dict[str, Any] | None = None,
    ) -> None:
        if storage:
            self.storage = storages[storage]
        elif backend:
            self.storage = import_string(backend)(**(backend_options or {}))
        else:
            from django.conf import settings

            self.storage = FileSystemStorage(location=location or settings.BASE_DIR / "var" / "bucket")

    def get(self, key: str) -> BucketObject | None:
        check_key(key)
        if not self.storage.exists(key):
            return None
        with self.storage.open(key, "rb") as fh:
            body = fh.read()
        return BucketObject(key, body, self._modified(key))

    def put(self, key: str, data: Any) -> dict:
        """Store ``data`` (bytes, str, or a JSON-able value) under ``key``, replacing what was there."""
        check_key(key)
        if isinstance(data, str):
            body = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            body = bytes(data)
        else:
            body = json.dumps(data).encode("utf-8")
        if self.storage.exists(key):
            self.storage.delete(key)
        saved = self.storage.save(key, ContentFile(body))
        return {"key": saved, "size": len(body), "uploaded": self._modified(saved)}

    def delete(self, key: str) -> None:
        check_key(key)
        if self.storage.exists(key):
            self.storage.delete(key)

    def list(self, prefix: str = "", limit: int = 1000) -> dict:
        """``{"objects": [{"key", "size", "uploaded"}], "truncated": bool}``, sorted by key."""
        keys = sorted(k for k in self._walk("") if k.startswith(prefix))
        objects = [{"key": k, "size": self.storage.size(k), "uploaded": self._modified(k)} for k in keys[:limit]]
        return {"objects": objects, "truncated": len(keys) > limit}

    def _walk(self, directory: str) -> Iterator[str]:
        try:
            dirs, files = self.storage.listdir(directory)
        except FileNotFoundError:
            return
        for name in files:
            yield f"{directory}{name}"
        for name in dirs:
            yield from self._walk(f"{directory}{name}/")

    def _modified(self, key: str) -> datetime | None:
        try:
            return self.storage.get_modified_time(key).astimezone(UTC)
        except (NotImplementedError, OSError):
            return None
