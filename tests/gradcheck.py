"""A centred-difference gradient checker: the oracle of every backward pass (float64 only).

For a scalar loss L = sum(f(a) * dout) the derivative along one element a_i is

    dL/da_i ~ (L(a + eps e_i) - L(a - eps e_i)) / (2 eps)        (error O(eps^2))

which is compared with the analytic gradient a layer's backward returns (for its input) or stores as
``ctx.d<attr>`` on the tape (for a parameter, in training mode).
"""
import contextlib
import importlib.util

import numba
import numpy as np
import pytest

import minixai as mx
from minixai.rules import Gradient
from minixai.tape import Tape


def numeric_gradient(f, a, dout, eps=1e-6):
    """d sum(f() * dout) / d a by centred differences. `a` is the float64 array f reads: it is perturbed
    in place, one element at a time, and restored."""
    assert a.dtype == np.float64, "finite differences need float64"
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        plus = np.sum(f() * dout)
        a[i] = old - eps
        minus = np.sum(f() * dout)
        a[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def assert_gradients_close(analytic, numeric, name="gradient", rtol=1e-5, atol=1e-7):
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol,
                               err_msg=f"analytic {name} != finite differences")


def run_layer(layer, *inputs, dout=None, rule=None):
    """One forward pass of `layer` on a fresh tape and, with `dout`, the backward pass under `rule` (the plain
    gradient by default). Returns (output, input gradient or None, tape)."""
    tape = Tape()
    out = tape.forward(layer, *inputs)
    dx = None if dout is None else tape.backward(layer, dout, rule or Gradient())
    return out, dx, tape


def check_layer(layer, *inputs, params=(), seed=0):
    """Check `layer.backward` against finite differences of sum(layer(*inputs) * dout).

    inputs: float64 arrays (Add takes two). params: names of the layer's arrays whose gradient the
    layer leaves on the tape as `ctx.d<name>` in training mode (checked after the backward pass); dotted
    names reach into children ("conv1.weight"). Returns the layer's output.
    """
    out = layer(*inputs)
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    _, dx, tape = run_layer(layer, *inputs, dout=dout)
    dx = dx if isinstance(dx, tuple) else (dx,)
    assert len(dx) == len(inputs)
    for k, (x, d) in enumerate(zip(inputs, dx)):
        assert d.shape == x.shape and d.dtype == np.float64
        assert_gradients_close(d, numeric_gradient(lambda: layer(*inputs), x, dout), f"d input {k}")
    for path in params:
        owner, attr = _resolve(layer, path)
        analytic = getattr(tape.contexts[owner], "d" + attr)
        assert analytic.shape == getattr(owner, attr).shape
        assert_gradients_close(analytic, numeric_gradient(lambda: layer(*inputs), getattr(owner, attr), dout),
                               f"d{path}")
    return out


def _resolve(layer, path):
    """'conv1.weight' -> (layer.conv1, 'weight'); 'weight' -> (layer, 'weight')."""
    *names, attr = path.split(".")
    for name in names:
        layer = layer.children()[name]
    return layer, attr


def backend_params():
    """pytest params for every CPU backend. 'numba' is skipped only while minixai.kernels.cpu does not
    exist yet; once it exists, any error importing it fails the tests that use it."""
    missing = importlib.util.find_spec("minixai.kernels.cpu") is None
    numba = pytest.param("numba", marks=pytest.mark.skipif(missing, reason="minixai.kernels.cpu not written yet"))
    return ["reference", "numpy", numba]


@contextlib.contextmanager
def using(backend):
    """Run with `backend`. Numba runs single-threaded here: finite differences make hundreds of tiny kernel
    calls, and a parallel region costs milliseconds on a busy machine (the thread partitioning of the
    kernels is tested against the reference in test_kernels_cpu.py)."""
    threads = numba.get_num_threads()
    if backend == "numba":
        numba.set_num_threads(1)
    try:
        with mx.use_backend(backend):
            yield
    finally:
        numba.set_num_threads(threads)
