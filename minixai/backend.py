"""Which kernels run the layers: ``reference``, ``numba`` (default on CPU), ``numpy`` or ``cupy``.

    mx.set_backend("reference")      # for the whole process (or MINIXAI_BACKEND=reference in the environment)
    with mx.use_backend("numpy"): ...   # for the enclosed code, in this thread only

``reference`` is the textbook loop version (tiny inputs only), ``numba`` the fast CPU kernels,
``numpy``/``cupy`` the vectorised array-module-generic kernels (``cupy`` runs them on a GPU).
``reference`` also runs every model unfused (see ``minixai.fusion``).
"""
import contextlib
import contextvars
import os

import numpy as np

BACKENDS = ("reference", "numba", "numpy", "cupy")
_default = None                                                   # set_backend / $MINIXAI_BACKEND
_scoped = contextvars.ContextVar("minixai_backend", default=None)  # use_backend, per thread


def _check(name):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    if name == "cupy":
        try:
            import cupy  # noqa: F401
        except ImportError as e:
            raise ValueError("backend 'cupy' needs CuPy and a GPU: pip install 'minixai[gpu]'") from e
    return name


def set_backend(name):
    """Select the kernels used by every layer from now on, in every thread."""
    global _default
    _default = _check(name)


def get_backend():
    """Name of the active backend (use_backend's, else set_backend's, else $MINIXAI_BACKEND, else 'numba')."""
    global _default
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    if _default is None:
        _default = _check(os.environ.get("MINIXAI_BACKEND", "numba"))
    return _default


@contextlib.contextmanager
def use_backend(name):
    """Switch the backend for the enclosed code in this thread: ``with use_backend("reference"): ...``."""
    token = _scoped.set(_check(name))
    try:
        yield
    finally:
        _scoped.reset(token)


def kernels(x=None):
    """The kernel module for the array x: the array-module kernels (``xp``) for an array that lives on a GPU
    (CuPy), else the active backend's (all four have the functions listed in minixai.kernels)."""
    if x is not None and array_module(x) is not np:
        from .kernels import xp
        return xp
    name = get_backend()
    if name == "numba":
        if _cpu is None:                # (an import statement per layer call was ~1% of a batch-1 pass)
            _load_cpu_kernels()
        return _cpu
    if name == "reference":
        from .kernels import reference
        return reference
    from .kernels import xp
    return xp


THREAD_WAIT = None      # how Numba's OpenMP threads wait between kernels, and why (set at the first kernel)
SPIN_COUNT = 5000       # about 0.1 ms of spinning: covers the gaps between the kernels of one pass
_cpu = None             # minixai.kernels.cpu, once the first kernel has chosen how the threads wait


def _load_cpu_kernels():
    global _cpu
    _choose_thread_wait()
    from .kernels import cpu
    _cpu = cpu


def _choose_thread_wait():
    """Between two parallel kernels Numba's OpenMP threads either spin a while or sleep at once. Sleeping
    costs a wake-up per kernel, and a pass runs some 150 of them: on an idle 2-core machine ResNet-50's
    gradient took 0.089 s sleeping and 0.080 s spinning, the shapes model's 2.5 ms and 1.3 ms. On a busy
    machine (other processes runnable on every core) spinning threads take the cores the others need: with
    two busy loops beside it the ResNet-50 gradient took 0.15 s sleeping, 0.20 s spinning 5000 rounds and
    0.25 s with 10000. So, once, just before the first Numba kernel (the OpenMP runtime reads its
    environment when it starts): spin SPIN_COUNT rounds (GOMP_SPINCOUNT) if, on every one of a few looks
    at the run queue, the other runnable processes leave a core to each of Numba's threads; sleep
    (OMP_WAIT_POLICY=PASSIVE) otherwise. Either variable set by the user wins. THREAD_WAIT says which."""
    global THREAD_WAIT
    if THREAD_WAIT is not None:
        return
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        THREAD_WAIT = "as set in the environment (OMP_WAIT_POLICY, GOMP_SPINCOUNT)"
        return
    import numba
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    others = _other_runnable()
    if others is not None and others + numba.config.NUMBA_NUM_THREADS <= cores:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
        THREAD_WAIT = f"spin {SPIN_COUNT} rounds, then sleep ({others} other runnable, {cores} cores)"
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        seen = "unknown" if others is None else str(others)
        THREAD_WAIT = f"sleep at once ({seen} other runnable, {cores} cores)"


def _other_runnable(looks=8):
    """The fewest other runnable processes seen in `looks` reads of /proc/loadavg ("running/total", this
    process included), 0.5 ms apart: a process that stays busy is seen every time, a passing one is not.
    None where there is no /proc (macOS, Windows)."""
    import time
    try:
        counts = []
        for _ in range(looks):
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
            time.sleep(0.0005)
        return max(0, min(counts))
    except (OSError, ValueError, IndexError):
        return None


def array_module(x):
    """numpy or cupy, whichever owns ``x``. An array type may name its module in ``__array_module__`` (the
    tests' stand-in for a GPU array, tests/fake_device.py)."""
    if type(x) is np.ndarray:
        return np
    named = getattr(type(x), "__array_module__", None)
    if named is not None:
        return named
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    return np


def to_device(x, like):
    """x (a NumPy or device array, or None) on the device where `like` lives: an explicit copy, never implicit."""
    if x is None:
        return None
    xp = array_module(like)
    if array_module(x) is xp:
        return x
    return xp.asarray(to_host(x)) if xp is not np else to_host(x)


def to_host(x):
    """x as a NumPy array: an explicit device-to-host copy for a GPU array, x itself otherwise."""
    if array_module(x) is np:
        return x
    return x.get()
