"""Sharding a surface across processes and machines with ``torch.distributed`` (via ``torchrun``).

Work is pulled, not pushed: the pending grid points are cut into chunks, and each rank claims
the next chunk with an atomic counter in the process group's key-value store
(``store.add``), so a slow rank or an expensive region of the grid never leaves the others
idle. Each rank posts its results to the store; rank 0 collects them, writes the HDF5 file,
and is the only process that touches it. No collective runs inside the loop, so uneven shards
cannot deadlock. A crashed run is resumed from the file's ``done`` mask by launching the same
command again.

Curvature (``landscape hessian``) shards the data instead: :func:`sum_over_ranks` adds the ranks'
partial products (one all-reduce per product), so every rank runs the same Krylov method.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from landscape.errors import LandscapeError


@dataclass
class Group:
    """This process's place in the run: ``rank`` of ``world_size`` (1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    store: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_group(device_type: str, timeout_s: float = 1800.0) -> Group:
    """Join the process group torchrun set up (gloo on CPU, NCCL on GPUs); a no-op without torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # not launched by torchrun
        return Group()
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    store = dist.distributed_c10d._get_default_store()
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), store)


def close_group(group: Group) -> None:
    if group.distributed and dist.is_initialized():
        dist.destroy_process_group()


def local_device(name: str, group: Group) -> str:
    """``cuda`` under torchrun means this rank's local GPU."""
    if name == "cuda" and group.distributed:
        return f"cuda:{group.local_rank}"
    return name


def encode_array(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def decode_array(raw: bytes) -> np.ndarray:
    return np.load(io.BytesIO(raw), allow_pickle=False)  # type: ignore[no-any-return]


class WorkQueue:
    """Pending point indices handed out in claims of any size to whichever rank is free.

    A claim is an atomic ``store.add`` on a counter of items, so each rank sizes its claims to
    about a second of its own work. Finished rows go back through the store under a result
    counter; rank 0 reads them in order. Keys live under ``prefix`` so runs never mix.
    """

    def __init__(self, group: Group, n_items: int, prefix: str) -> None:
        self.group, self.n_items, self.prefix = group, n_items, prefix
        self._local_next = 0
        self._read = 0
        self.received = 0  # items rank 0 has (its own and collected)

    def claim(self, n: int) -> slice | None:
        """Up to ``n`` unclaimed items as a slice into the pending list, or None when none are left."""
        n = max(1, n)
        if self.group.distributed:
            end = int(self.group.store.add(f"{self.prefix}/claim", n))
        else:
            self._local_next += n
            end = self._local_next
        start = end - n
        if start >= self.n_items:
            return None
        return slice(start, min(end, self.n_items))

    def post(self, where: slice, rows: np.ndarray) -> None:
        """A non-zero rank hands finished rows to rank 0."""
        store = self.group.store
        j = int(store.add(f"{self.prefix}/n_results", 1)) - 1
        buf = io.BytesIO()
        np.savez(buf, start=np.array([where.start]), rows=rows)
        store.set(f"{self.prefix}/result/{j}", buf.getvalue())

    def collect(self) -> Iterator[tuple[slice, np.ndarray]]:
        """Rank 0: rows the other ranks finished since the last call."""
        if not self.group.distributed:
            return
        store = self.group.store
        available = int(store.add(f"{self.prefix}/n_results", 0))
        while self._read < available:
            key = f"{self.prefix}/result/{self._read}"
            with np.load(io.BytesIO(bytes(store.get(key))), allow_pickle=False) as z:
                start, rows = int(z["start"][0]), z["rows"]
            store.delete_key(key)
            self._read += 1
            yield slice(start, start + len(rows)), rows

    @property
    def finished(self) -> bool:
        return self.received >= self.n_items


def share_setup(group: Group, key: str, payload: bytes | None, error: str | None = None) -> bytes:
    """Rank 0 publishes the pending work (or an error); the other ranks wait for it.

    An error on rank 0 (say, a settings mismatch) is raised on every rank, so none hangs.
    """
    if not group.distributed:
        return payload or b""
    if group.is_main:  # the caller re-raises its own error after publishing it
        group.store.set(key, b"E" + error.encode() if error is not None else b"O" + (payload or b""))
        return payload or b""
    raw = bytes(group.store.get(key))  # blocks until rank 0 has set it
    if raw[:1] == b"E":
        raise LandscapeError(raw[1:].decode())
    return raw[1:]


def gather_counts(group: Group, prefix: str, count: int) -> list[int]:
    """Points each rank evaluated (rank 0 waits briefly for the others' numbers)."""
    if not group.distributed:
        return [count]
    group.store.set(f"{prefix}/count/{group.rank}", str(count).encode())
    if not group.is_main:
        return []
    return [int(bytes(group.store.get(f"{prefix}/count/{r}")).decode()) for r in range(group.world_size)]


class TerminateRequested(KeyboardInterrupt):
    """SIGTERM (torchrun stopping the group after a worker died): unwind and flush."""


@contextlib.contextmanager
def flush_on_sigterm() -> Iterator[None]:
    """While inside, SIGTERM raises so ``finally`` blocks save finished work; then the old handler returns.

    Only in the main thread (where Python delivers signals); elsewhere it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise TerminateRequested()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_a_little() -> None:
    time.sleep(0.02)


def sum_over_ranks(tensor: Tensor) -> Tensor:
    """The sum of ``tensor`` over every rank of the process group, as a new tensor (each rank gets the same)."""
    out = tensor.clone()
    dist.all_reduce(out)
    return out


def samples_per_rank(group: Group, local: int, device: torch.device) -> list[int]:
    """How many samples each rank holds (a collective: every rank must call it; ``device``: this rank's)."""
    counts = torch.zeros(group.world_size, dtype=torch.float64, device=device)
    counts[group.rank] = local
    return [round(float(c)) for c in sum_over_ranks(counts)]
