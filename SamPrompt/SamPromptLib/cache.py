"""Image embeddings kept in memory (LRU, bounded in bytes) and computed ahead on a worker thread.

A key is (volume id, plane, slice, window, backend): a new prompt on a seen slice then costs
only the prompt decoder.  ``Precomputer`` embeds requested slices (the neighbours of the one
being worked on, or a whole volume) one at a time on a daemon thread, newest request first,
and skips what the cache already holds; foreground work never waits for more than the one
slice in progress.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 512 * 1024 * 1024  # about 128 LiteMedSAM/SAM embeddings of 4 MiB


class EmbeddingCache:
    """Thread-safe LRU mapping key -> Embedding, bounded by the embeddings' total bytes."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        if max_bytes <= 0:
            raise ValueError(f"cache size must be positive, got {max_bytes} bytes")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        """The embedding for ``key`` (marked most recently used), or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def put(self, key, embedding) -> None:
        """Store an embedding, evicting the least recently used ones beyond the byte bound."""
        size = int(embedding.nbytes)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= int(old.nbytes)
            if size > self.max_bytes:
                log.warning("embedding of %d bytes exceeds the cache bound of %d bytes: not cached", size, self.max_bytes)
                return
            self._items[key] = embedding
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= int(evicted.nbytes)

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def set_max_bytes(self, max_bytes: int) -> None:
        """Change the bound (the panel's cache size), evicting at once if needed."""
        with self._lock:
            self.max_bytes = int(max_bytes)
            while self._bytes > self.max_bytes and self._items:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= int(evicted.nbytes)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def stats(self) -> dict:
        with self._lock:
            return {"entries": len(self._items), "bytes": self._bytes, "max_bytes": self.max_bytes,
                    "hits": self.hits, "misses": self.misses}


class Precomputer:
    """A daemon thread that runs ``compute(key)`` for requested keys not yet in the cache."""

    def __init__(self, cache: EmbeddingCache, compute):
        self.cache = cache
        self._compute = compute
        self._pending: list = []  # most urgent last
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = False
        self.computed = 0
        self.errors: list = []
        self._thread = threading.Thread(target=self._loop, name="SAM embedding precompute", daemon=True)
        self._thread.start()

    def request(self, keys, replace: bool = True) -> None:
        """Queue keys (first = most urgent); ``replace`` drops older requests (the user moved on)."""
        keys = [k for k in keys if k not in self.cache]
        with self._cond:
            if replace:
                self._pending.clear()
            for key in reversed(keys):
                if key in self._pending:
                    self._pending.remove(key)
                self._pending.append(key)
            self._cond.notify()

    def cancel_pending(self) -> None:
        """Forget queued keys (the one being computed finishes)."""
        with self._cond:
            self._pending.clear()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending) + (1 if self._busy else 0)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or computing; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def stop(self) -> None:
        """End the thread after the slice in progress."""
        with self._cond:
            self._stopped = True
            self._pending.clear()
            self._cond.notify_all()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopped or self._pending)
                if self._stopped:
                    return
                key = self._pending.pop()
                self._busy = True
            try:
                if key not in self.cache:
                    self._compute(key)  # stores into the cache itself
                    self.computed += 1
            except Exception as exc:  # kept for the GUI/log; the thread goes on with the next key
                log.warning("precomputing embedding %s failed: %s", key, exc)
                self.errors.append((key, str(exc)))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
