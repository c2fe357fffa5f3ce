"""One worker thread runs every generation, batching requests for the same adapter.

Requests queue up while a batch generates; the worker then takes the oldest request and every
waiting request for the same version with the same decoding options (up to ``max_batch``
prompts) and answers them with one ``generate`` call. Nobody waits for a batch to fill: a lone
request runs at once, and the batches grow by themselves under load. The oldest request always
goes first, so no adapter starves.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from adaptune.errors import UserError
from adaptune.registry import RegisteredVersion
from adaptune.serving.adapters import AdapterPool
from adaptune.serving.generation_options import Answer, EmptyPrompt, GenerationOptions

log = logging.getLogger(__name__)


@dataclass
class _Job:
    version: RegisteredVersion
    prompts: list[str]
    options: GenerationOptions
    future: Future[list[Answer]]

    @property
    def key(self) -> tuple[str, GenerationOptions]:
        return self.version.ref, self.options


class GenerationQueue:
    """Jobs in, answers out through futures; one worker thread owns the pool's generation."""

    def __init__(self, pool: AdapterPool, max_batch: int = 32) -> None:
        """Create the queue; ``start`` runs its worker.

        Args:
            pool: Where the models are.
            max_batch: Most prompts in one ``generate`` call (a larger request runs alone).
        """
        self.pool = pool
        self.max_batch = max_batch
        self._pending: deque[_Job] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread."""
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="adaptune-generate", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop taking jobs, fail those still waiting and stop the worker."""
        with self._changed:
            self._closed = True
            waiting = list(self._pending)
            self._pending.clear()
            self._changed.notify_all()
        for job in waiting:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        if self._thread is not None:
            self._thread.join()

    def submit(
        self, version: RegisteredVersion, prompts: list[str], options: GenerationOptions
    ) -> Future[list[Answer]]:
        """Queue ``prompts`` for ``version``; the future gives one answer per prompt."""
        job = _Job(version, prompts, options, Future())
        with self._changed:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            self._pending.append(job)
            self._changed.notify()
        return job.future

    def waiting(self) -> int:
        """Jobs queued and not yet taken."""
        with self._changed:
            return len(self._pending)

    def _next_batch(self) -> list[_Job] | None:
        with self._changed:
            while not self._pending and not self._closed:
                self._changed.wait()
            if self._closed:
                return None
            first = self._pending.popleft()
            batch, size, rest = [first], len(first.prompts), deque()
            while self._pending:
                job = self._pending.popleft()
                if job.key == first.key and size + len(job.prompts) <= self.max_batch:
                    batch.append(job)
                    size += len(job.prompts)
                else:
                    rest.append(job)
            self._pending = rest
        # A client that went away cancelled its future: drop its job.
        return [job for job in batch if job.future.set_running_or_notify_cancel()]

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if not batch:
                continue
            version = batch[0].version
            try:
                # A request with a prompt of no token fails alone, not its whole batch.
                empty = [self.pool.empty_prompt(version, job.prompts) for job in batch]
                for job, index in zip(batch, empty, strict=True):
                    if index is not None:
                        job.future.set_exception(EmptyPrompt(index))
                batch = [job for job, index in zip(batch, empty, strict=True) if index is None]
                if not batch:
                    continue
                prompts = [p for job in batch for p in job.prompts]
                answers = self.pool.generate(version, prompts, batch[0].options)
            except Exception as exc:  # reported to every request of the batch, not fatal
                if isinstance(exc, UserError):  # a broken version: its reason, no traceback
                    log.warning("generation for %s refused: %s", version.ref, exc)
                else:
                    log.exception("generation for %s failed", version.ref)
                for job in batch:
                    job.future.set_exception(exc)
                continue
            start = 0
            for job in batch:
                job.future.set_result(answers[start : start + len(job.prompts)])
                start += len(job.prompts)
