"""Read and validate a streamed source's next batch while the current one is written.

A batch of a million sales spends about 16 s in Python (reading the source, checking every
value, typing the columns) and about 20 s in the database (staging, the indexed insert, the
daily sums). One after the other the two sides idle in turn; here a worker thread prepares
batch n + 1 while the caller writes batch n. The database side waits on its socket, which
releases the GIL, so the two really overlap on two cores.

Bounded: at most two batches are held at once (the one being written and the one prepared
next), so memory grows by one batch, not by the source. Order, errors and the
one-transaction-per-batch contract are the caller's as before: batches arrive in the order
read, a failure to read is raised where the caller asks for the next batch, and a failure
to prepare one is handed over with it, to be raised inside that batch's transaction.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")

_END = object()


class Prepared(Generic[T, U]):
    """One batch and what `prepare` made of it, or the exception it raised."""

    __slots__ = ("batch", "error", "value")

    def __init__(self, batch: T, value: U | None, error: Exception | None) -> None:
        self.batch = batch
        self.value = value
        self.error = error

    def get(self) -> U:
        """What `prepare` returned; raises what it raised."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(batches: Iterable[T], prepare: Callable[[T], U], *,
               name: str = "prefetch") -> Iterator[Prepared[T, U]]:
    """`Prepared(batch, prepare(batch))` for each batch of `batches`, the reading and the
    preparing done one batch ahead in a worker thread.

    Use it in a `with contextlib.closing(...)`: leaving early stops the worker once it has
    finished the batch in hand, and closes `batches` in the thread that iterated it.
    """
    # Two permits: the batch the caller holds and the one prepared ahead. The caller gives
    # one back each time it asks for the next batch, that is once it is done with one.
    permits = threading.Semaphore(2)
    handed: queue.Queue[object] = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        source = iter(batches)
        try:
            while True:
                permits.acquire()
                if stop.is_set():
                    return
                try:
                    batch = next(source)
                except StopIteration:
                    handed.put(_END)
                    return
                except BaseException as exc:  # re-raised in the caller's thread
                    handed.put(_Failed(exc))
                    return
                try:
                    handed.put(Prepared(batch, prepare(batch), None))
                except Exception as exc:  # handed over, raised in the batch's transaction
                    handed.put(Prepared(batch, None, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    first = True
    try:
        while True:
            if not first:
                permits.release()
            first = False
            item = handed.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        permits.release()
        worker.join()
