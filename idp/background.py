"""Work done after the answer: a small thread pool per process.

Used where the time a request takes must not depend on whether an account
exists (the forgotten-password and new-activation-link e-mails). Each job runs
in an application context with its own SQL session; a failure is logged, never
shown to the user, whose answer is the same either way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait
from typing import Any

from flask import Flask

__all__ = ["Background"]

log = logging.getLogger(__name__)


class Background:
    def __init__(self, app: Flask, workers: int = 2) -> None:
        self.app = app
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="idp-background")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._repeating: set[str] = set()
        self._queued: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    def submit(self, job: Callable[..., None], *args: Any) -> None:
        future = self._pool.submit(self._run, job, args)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _run(self, job: Callable[..., None], args: tuple[Any, ...]) -> None:
        with self.app.app_context():
            try:
                job(*args)
            except Exception:
                log.exception("background job %s failed", job.__qualname__)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def every(self, seconds: float, job: Callable[[], object]) -> None:
        """Run ``job`` every ``seconds`` on a daemon thread, from now on (one
        thread per job; later calls for the same job do nothing)."""
        name = job.__qualname__
        with self._lock:
            if name in self._repeating:
                return
            self._repeating.add(name)

        def loop() -> None:
            while not self._stopped.wait(seconds):
                self._run(job, ())

        thread = threading.Thread(target=loop, name=f"idp-every-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def submit_once(self, job: Callable[[], object]) -> None:
        """Queue ``job`` unless a run of it is already waiting to start."""
        name = job.__qualname__
        with self._lock:
            if name in self._queued:
                return
            self._queued.add(name)

        def run() -> None:
            with self._lock:
                self._queued.discard(name)
            job()

        run.__qualname__ = name
        self.submit(run)

    def stop(self, timeout: float = 10) -> None:
        """End the repeating jobs and let the queued ones finish (tests,
        orderly shutdown); nothing is accepted afterwards."""
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout)
        self._pool.shutdown(wait=True)

    def wait(self, timeout: float = 10) -> None:
        """Until every job submitted so far has run (tests, orderly shutdown)."""
        with self._lock:
            pending = set(self._pending)
        wait(pending, timeout=timeout)
