"""Small bounded, thread-safe memories of what this process did or concluded per container."""

from __future__ import annotations

import threading
from collections import OrderedDict


class Recent[V]:
    """Remember the most recent ``size`` entries; the oldest are forgotten first."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[str, V] = OrderedDict()

    def put(self, key: str, value: V) -> None:
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get(self, key: str) -> V | None:
        with self._lock:
            return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def forget(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)
