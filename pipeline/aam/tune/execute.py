"""Where a search's units run: in this process, in spawned worker processes, or on dask."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

from pipeline.aam.tune.config import TuneConfig
from pipeline.aam.tune.worker import ReferenceJob, TrialJob, run_unit
from pipeline.errors import ConfigError

Unit = TrialJob | ReferenceJob


def worker_count(config: TuneConfig, units: int) -> int:
    """Worker processes for ``units`` units: as asked (default one per core), at most one each."""
    return max(1, min(config.workers or os.cpu_count() or 1, units))


def execute(
    units: list[Unit], config: TuneConfig, client: Any, on_done: Callable[[Unit, dict], None]
) -> None:
    """Run every unit: on dask (``client``), in spawned worker processes, or here in turn."""
    if not units:
        return
    if client is not None:
        _execute_dask(units, client, on_done)
        return
    workers = worker_count(config, len(units))
    if workers == 1:
        for unit in units:
            on_done(unit, run_unit(unit))
        return
    context = multiprocessing.get_context("spawn")  # no forked torch or thread state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_unit, unit): unit for unit in units}
        try:
            for future in as_completed(futures):
                on_done(futures[future], future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


@contextmanager
def dask_client(address: str | None) -> Iterator[Any]:
    """A connected dask Client for ``address`` (None: no dask); one line when unreachable."""
    if address is None:
        yield None
        return
    from distributed import Client

    try:
        client = Client(address, timeout="15s")
    except Exception as error:  # OSError, TimeoutError, ValueError for a bad address
        text = " ".join(str(error).split())
        raise ConfigError(f"cannot reach the dask scheduler at {address}: {text}") from None
    with client:
        yield client


def _execute_dask(units: list[Unit], client: Any, on_done: Callable[[Unit, dict], None]) -> None:
    from distributed import as_completed as dask_completed

    run = uuid.uuid4().hex[:8]
    futures = {}
    for unit in units:
        name = unit.trial.trial_id if isinstance(unit, TrialJob) else "raw"
        key = f"anon-store-tune-{name}-{run}"
        futures[client.submit(run_unit, unit, key=key, pure=False)] = unit
    for future in dask_completed(list(futures)):
        on_done(futures[future], future.result())
