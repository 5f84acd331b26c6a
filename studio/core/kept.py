"""The last few results of slow work (a file read, a data report), each made once, kept by key. A caller waits
only for the key it asks for: a million-row file being read holds up the callers that want that file, never the
advice or another file's report. No torch, no gradio."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable


class Kept:
    def __init__(self, keep: int):
        self.keep = keep
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()  # guards the dicts only, never held while a result is made
        self._making: dict = {}  # key -> the lock of the work under way for it

    def get(self, key) -> Any | None:
        """The kept result, or None (nothing is made)."""
        with self._lock:
            return self._items.get(key)

    def get_or_make(self, key, make: Callable[[], Any]) -> Any:
        """The kept result, or `make()`'s, made once however many callers ask at the same time."""
        with self._lock:
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            result = make()
            with self._lock:
                self._items[key] = result
                while len(self._items) > self.keep:
                    self._items.popitem(last=False)
                self._making.pop(key, None)
            return result
