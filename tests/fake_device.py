"""A stand-in for a GPU array module, on the CPU: CI has no GPU, and the GPU path must still be tested.

`DeviceArray` wraps a NumPy array and behaves as a CuPy array does where it matters: arithmetic, NumPy's
ufuncs and array functions, indexing and the usual methods work and give DeviceArrays; an implicit conversion
to a NumPy array (``np.asarray(d)``, a NumPy array mixed into an operation or used as an index) raises
TypeError, as CuPy refuses it; ``d.get()`` is the explicit copy back; ``bool(d)`` / ``float(d)`` of one value
work. `fake` is its array module: NumPy's functions taking and giving DeviceArrays (``fake.asarray`` is the
explicit copy to the "device"). minixai's GPU path run on it proves that the path uses only the array
module of its inputs: a stray ``np.asarray`` or a host array in a device computation fails here as on a GPU.
"""
import types

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin


class HostArrayError(TypeError):
    """A NumPy array met a device array without an explicit copy."""


def _device(value):
    """`value` with every DeviceArray replaced by its NumPy array; a NumPy array of more than one value
    refused (CuPy accepts only scalars and its own arrays)."""
    if isinstance(value, DeviceArray):
        return value.data
    if isinstance(value, np.ndarray) and value.ndim > 0:
        raise HostArrayError(f"a NumPy array of shape {value.shape} reached the fake device without an explicit "
                             "copy (CuPy would refuse it too)")
    if isinstance(value, (list, tuple)):
        return type(value)(_device(v) for v in value)
    if isinstance(value, dict):
        return {k: _device(v) for k, v in value.items()}
    return value


def _wrap(value):
    if isinstance(value, np.ndarray):
        return DeviceArray(value)
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class DeviceArray(NDArrayOperatorsMixin):
    """A NumPy array that pretends to live on another device."""
    __array_module__ = None             # the module `fake`, set below (minixai.backend.array_module reads it)

    def __init__(self, data):
        self.data = data

    def __array__(self, dtype=None, copy=None):
        raise HostArrayError("implicit conversion of a fake device array to NumPy; use .get()")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        result = getattr(ufunc, method)(*_device(inputs), **_device(kwargs))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        return _wrap(func(*_device(args), **_device(kwargs)))

    def get(self):
        return self.data.copy()

    def __getattr__(self, name):        # shape, dtype, reshape, astype, sum, max, ...
        if name.startswith("__"):       # never __array_interface__ & co.: NumPy would convert through them
            raise AttributeError(name)
        attr = getattr(self.data, name)
        if callable(attr):
            return lambda *args, **kwargs: _wrap(attr(*_device(args), **_device(kwargs)))
        return _wrap(attr)

    def __getitem__(self, key):
        return _wrap(self.data[_device(key)])

    def __setitem__(self, key, value):
        self.data[_device(key)] = _device(value)

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        return (_wrap(row) for row in self.data)

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __index__(self):
        return int(self.data)

    def __format__(self, spec):
        return format(self.data.item() if self.data.ndim == 0 else self.data, spec)

    def __repr__(self):
        return f"DeviceArray({self.data!r})"


class _Ufunc:
    """A NumPy ufunc for device arrays (CuPy's ufuncs have .at too)."""

    def __init__(self, ufunc):
        self.ufunc = ufunc

    def __call__(self, *args, **kwargs):
        return _wrap(self.ufunc(*_device(args), **_device(kwargs)))

    def at(self, a, indices, b=None):
        self.ufunc.at(_device(a), _device(indices), _device(b))

    def reduce(self, *args, **kwargs):
        return _wrap(self.ufunc.reduce(*_device(args), **_device(kwargs)))


class _FakeModule(types.ModuleType):
    """NumPy's namespace for DeviceArrays: functions refuse NumPy arrays, except the explicit copies."""

    def __getattr__(self, name):
        if name in ("asarray", "array", "ascontiguousarray"):
            def copy_to_device(a, dtype=None, **kwargs):
                data = a.data if isinstance(a, DeviceArray) else a
                return DeviceArray(getattr(np, name)(data, dtype=dtype, **kwargs))
            return copy_to_device
        attr = getattr(np, name)
        if isinstance(attr, np.ufunc):
            return _Ufunc(attr)
        if callable(attr) and not isinstance(attr, type):
            return lambda *args, **kwargs: _wrap(attr(*_device(args), **_device(kwargs)))
        return attr                                     # dtypes, constants, np.newaxis


fake = _FakeModule("fake_device")
DeviceArray.__array_module__ = fake
