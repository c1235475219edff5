"""Handing a commit group's outcomes to whoever waits for them: threads through concurrent
futures, coroutines through their event loop, one loop wake-up per group."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future
from typing import Any

from domain.commands import CommandResult
from domain.errors import LedgerError

Outcome = CommandResult | LedgerError
# Who waits for a submission's outcomes: a thread (concurrent Future) or an event loop's task
# (asyncio Future, answered on its own loop; see `Ledger.submit_async`).
Waiter = Future[list[Outcome]] | asyncio.Future[list[Outcome]]


def answer(answers: list[tuple[Waiter, list[Outcome] | BaseException]]) -> None:
    """Hand each waiter its outcomes (or the batch's exception): threads' futures at once,
    coroutines' futures in one callback per event loop (from the writer thread, each
    `call_soon_threadsafe` is a loop wake-up, so a group pays one, not one per request)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[Outcome]], Any]]] = {}
    for fut, value in answers:
        if isinstance(fut, asyncio.Future):
            by_loop.setdefault(fut.get_loop(), []).append((fut, value))
        elif isinstance(value, BaseException):
            fut.set_exception(value)
        else:
            fut.set_result(value)
    for loop, settled in by_loop.items():
        # A closed loop raises RuntimeError: nobody is waiting there any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, settled)


def settle(settled: list[tuple[asyncio.Future[list[Outcome]], Any]]) -> None:
    """On the waiters' loop: set each future (one whose request was cancelled stays so)."""
    for fut, value in settled:
        if fut.done():
            continue
        if isinstance(value, BaseException):
            fut.set_exception(value)
        else:
            fut.set_result(value)
