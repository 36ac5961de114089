"""Which kernels run the layers: ``reference``, ``numba`` (default on CPU), ``numpy`` or ``cupy``.

    mx.set_backend("reference")      # or MINIXAI_BACKEND=reference in the environment
    with mx.use_backend("numpy"): ...

``reference`` is the textbook loop version (tiny inputs only), ``numba`` the fast CPU kernels,
``numpy``/``cupy`` the vectorised array-module-generic kernels (``cupy`` runs them on a GPU).
"""
import contextlib
import importlib
import os

# Numba's OpenMP threads sleep between parallel regions instead of spinning. On a busy machine (more
# runnable threads than cores) spinning workers steal the cores the others need: a shapes-model gradient
# took 0.25 s with spinning and 0.004 s without, a ResNet-50 gradient 2.0 s against 0.5 s. Set the
# variable yourself to override; it must be set before the OpenMP runtime starts, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

BACKENDS = ("reference", "numba", "numpy", "cupy")
_MODULES = {"reference": "minixai.kernels.reference", "numba": "minixai.kernels.cpu",
            "numpy": "minixai.kernels.xp", "cupy": "minixai.kernels.xp"}
_active = None


def set_backend(name):
    """Select the kernels used by every layer from now on."""
    global _active
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    if name == "cupy":
        try:
            import cupy  # noqa: F401
        except ImportError as e:
            raise ValueError("backend 'cupy' needs CuPy and a GPU: pip install 'minixai[gpu]'") from e
    _active = name


def get_backend():
    """Name of the active backend (from set_backend, else $MINIXAI_BACKEND, else 'numba')."""
    global _active
    if _active is None:
        set_backend(os.environ.get("MINIXAI_BACKEND", "numba"))
    return _active


@contextlib.contextmanager
def use_backend(name):
    """Temporarily switch the backend: ``with use_backend("reference"): ...``."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def kernels():
    """The kernel module of the active backend."""
    return importlib.import_module(_MODULES[get_backend()])


def array_module(x):
    """numpy or cupy, whichever owns ``x``."""
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    return np
