"""A byte-bounded LRU cache for immutable blobs (sample PNGs): hot images skip the database and the disk."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Generic, TypeVar

K = TypeVar("K")


class BytesCache(Generic[K]):
    def __init__(self, max_bytes: int, max_item_bytes: int = 1 << 20) -> None:
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes
        self._items: OrderedDict[K, tuple[str, bytes]] = OrderedDict()
        self._size = 0
        self._lock = Lock()

    def get(self, key: K) -> tuple[str, bytes] | None:
        """``(tag, data)`` for ``key``; ``tag`` is whatever the caller stored with it (e.g. the owner)."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: K, tag: str, data: bytes) -> None:
        if len(data) > self.max_item_bytes or self.max_bytes <= 0:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old[1])
            self._items[key] = (tag, data)
            self._size += len(data)
            while self._size > self.max_bytes and self._items:
                _, (_, evicted) = self._items.popitem(last=False)
                self._size -= len(evicted)
