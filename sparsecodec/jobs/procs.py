"""Process hygiene: SIGTERM handled like Ctrl-C, and worker processes that die with their parent.

``spev`` turns SIGTERM into :class:`Terminated`, a :class:`KeyboardInterrupt`, so every clean-up path that
Ctrl-C takes (temporary outputs removed, batch locks released, pools shut down) runs for ``kill`` too; the
exit status then follows the shell convention, 128 + the signal number.  No torch import here.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.pool
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType

EXIT_SIGINT = 128 + signal.SIGINT
"""Exit status after Ctrl-C (130)."""
EXIT_SIGTERM = 128 + signal.SIGTERM
"""Exit status after SIGTERM (143)."""
_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program happens to be (a :class:`KeyboardInterrupt`, so clean-up runs)."""


_terminated = False
"""Set once SIGTERM arrived: a library that turns our :class:`Terminated` into a plain KeyboardInterrupt
(Ray's ``ray.wait`` does) must not change the exit status."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    global _terminated
    _terminated = True
    raise Terminated()


def terminate_like_interrupt() -> None:
    """From now on SIGTERM raises :class:`Terminated` in the main thread (call from the main thread)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def interrupt_exit(exc: KeyboardInterrupt) -> tuple[int, str]:
    """``(exit status, one-line message)`` for an interrupt: 143 "terminated" or 130 "interrupted"."""
    _forget_unhandled_interrupt()
    if isinstance(exc, Terminated) or _terminated:
        return EXIT_SIGTERM, "spev: terminated"
    return EXIT_SIGINT, "spev: interrupted"


def _forget_unhandled_interrupt() -> None:
    """Clear CPython's "unhandled KeyboardInterrupt" flag, as the interrupt is handled now.

    An interrupt that passed through ``exec(<string>)`` (scipy runs one while it imports) sets that flag
    even when caught later, and ``python -m`` then ends the process by SIGINT instead of our exit status,
    even after SIGTERM.  Each evaluation of a string first resets the flag (CPython's run_eval_code_obj)."""
    exec("None", {})  # a constant: resets the flag, runs nothing


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this (worker) process when its parent dies, even by SIGKILL.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere a no-op.  If the parent is already gone when this runs
    the worker exits at once.  With ``sig=SIGTERM`` the worker's own clean-up runs (see
    :func:`terminate_like_interrupt`).
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(EXIT_SIGTERM)


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"
"""cgroup v2's CPU limit of this process's group: ``"<quota> <period>"`` in microseconds, or ``"max ..."``."""


def usable_cpus() -> int:
    """CPUs this process may use: its CPU affinity, lowered to a cgroup v2 CPU quota when one is set (a
    container limited to 2 CPUs of a 64-CPU host sees 64 in its affinity and its quota in ``cpu.max``)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path(CGROUP_CPU_MAX).read_text(encoding="ascii").split()[:2]
        if quota != "max" and int(period) > 0:
            cpus = min(cpus, max(1, int(quota) // int(period)))
    return max(1, cpus)


_worker_temps: set[str] = set()
"""Temporary outputs a worker is writing now, removed if it is told to stop."""

_in_worker = False
"""Set by :func:`worker_init` in a pool worker."""


@contextlib.contextmanager
def worker_temp(path: str) -> Iterator[None]:
    """While inside, a SIGTERM to this worker removes ``path`` before the worker exits.

    Only while inside: an idle worker keeps SIGTERM's default action (die at once).  A Python-level handler
    runs only between bytecodes, so a SIGTERM that lands just before the worker blocks on the pool's task
    queue would wait there for ever (``Pool.terminate`` holds that queue's lock and then joins the worker)."""
    armed = _in_worker and not _worker_temps and threading.current_thread() is threading.main_thread()
    _worker_temps.add(path)
    if armed:
        signal.signal(signal.SIGTERM, _worker_stop)
    try:
        yield
    finally:
        _worker_temps.discard(path)
        if armed:
            # signal.signal first runs a stop that is already pending, then swaps the handler; one landing
            # between the two would find the default handler at the Python level and be dropped, so it is
            # held back by the mask meanwhile and then kills the worker
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # held still inside stop_held


@contextlib.contextmanager
def stop_held() -> Iterator[None]:
    """In a pool worker's main thread, hold SIGTERM back while inside (elsewhere nothing): a temporary
    output created here and registered with :func:`worker_temp` before the block ends is never left
    behind by a stop that lands in between."""
    if not _in_worker or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _worker_stop(signum: int, frame: FrameType | None) -> None:
    for path in list(_worker_temps):
        with contextlib.suppress(OSError):
            os.unlink(path)
    os._exit(128 + signum)


def worker_init() -> None:
    """Initializer for worker processes.  Ctrl-C is the parent's business (it stops the pool); SIGTERM (from
    the parent stopping the pool, or from the kernel when the parent dies) ends the worker at once, after it
    removes the temporary output it is writing (:func:`worker_temp`), so no worker outlives its parent or
    writes after it."""
    global _in_worker
    _in_worker = True
    _worker_temps.clear()  # a forked worker inherits its parent's set: those files are not the worker's
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # forked inside :func:`signals_deferred`
    die_with_parent()


def can_fork_workers() -> bool:
    """True when this process may fork a worker pool: the platform can fork and no other thread runs
    (forking a threaded process, a Ray worker say, can deadlock the child)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def env_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a count when it is set to one (``spev batch`` sets it per worker), else None."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() else None


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while forking a pool: they are delivered, to the handlers in force
    before, when the block ends.

    A signal that lands while ``fork`` runs its at-fork callbacks (the logging module's lock release, say)
    would raise inside the callback, where Python prints and drops the exception: the interrupt would be
    lost and the command would run on.  So, within the block, the signals only are recorded (another thread
    may take the process's signal, so blocking this thread alone is not enough), and they are blocked in
    this thread, so that forked workers start with them held until :func:`worker_init` unblocks them.
    Outside the main thread it does nothing: Python runs signal handlers in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    handlers = {s: signal.signal(s, hold) for s in _STOP_SIGNALS}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a blocked, pending one is recorded here
        for s, h in handlers.items():
            signal.signal(s, h)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


def fork_pool(workers: int, initializer: Callable[[], None] = worker_init) -> multiprocessing.pool.Pool:
    """A pool of ``workers`` forked processes, each started by ``initializer`` (which must call
    :func:`worker_init`), with SIGINT and SIGTERM held while it forks (:func:`signals_deferred`)."""
    ctx = multiprocessing.get_context("fork")
    with signals_deferred():
        return ctx.Pool(workers, initializer=initializer)


def stop_workers(pids: Iterable[int]) -> None:
    """SIGTERM each live worker process in ``pids`` (they clean up and exit; see :func:`worker_init`)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
