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
        _prefer_sleeping_threads()
        from .kernels import cpu
        return cpu
    if name == "reference":
        from .kernels import reference
        return reference
    from .kernels import xp
    return xp


def _prefer_sleeping_threads():
    """Numba's OpenMP threads sleep between parallel regions instead of spinning. On a busy machine (more
    runnable threads than cores) spinning workers steal the cores the others need: a shapes-model gradient
    took 0.25 s with spinning and 0.004 s without, a ResNet-50 gradient 2.0 s against 0.5 s. The OpenMP
    runtime reads OMP_WAIT_POLICY when it starts, at the first Numba kernel, so it is set (unless the user
    set it) just before that; the README says so."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def array_module(x):
    """numpy or cupy, whichever owns ``x``. An array type may name its module in ``__array_module__`` (the
    tests' stand-in for a GPU array, tests/fake_device.py)."""
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
