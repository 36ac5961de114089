"""Convolution and pooling kernels, three interchangeable implementations with one signature each.

- ``reference``: naive loops that read like the definitions (the oracle of the tests, tiny inputs only);
- ``cpu``: Numba kernels, the default on a CPU;
- ``xp``: vectorised, array-module generic (NumPy here, CuPy on a GPU).

Every module provides::

    conv2d_forward(x, w, b, stride, padding, dilation, scale=None, relu=False, residual=None) -> out
                                                 out = conv * scale[k] + b[k] (+ residual, then max(., 0)
                                                 with relu): an inference batch norm, a residual join
                                                 and a ReLU fused into the conv
    conv2d_backward_input(dout, w, x_shape, stride, padding, dilation, scale=None, gate=None, clip=False,
                          residual=None)
                                                 -> dx for dout * scale[k] where gate > 0 (clip: max(dout, 0)
                                                 first): a fused ReLU (gate = its output) and BN backward;
                                                 dx + residual with a residual (x's shape): the gradient
                                                 of a block's shortcut, summed as dx is written
    conv2d_backward_weight(dout, x, w_shape, stride, padding, dilation) -> dw
    maxpool2d_forward(x, kernel, stride, padding, dilation, ceil_mode) -> (out, argmax)
    maxpool2d_backward(dout, argmax, x_shape) -> dx
    relu_forward(x) -> out                       out = max(x, 0), NaN stays NaN
    relu_backward(dout, out) -> dx               dx = dout where out > 0, else 0 (a new array; dout is kept)

    linear_forward(x, w, b) -> out               out = x @ w^T + b   (x (N, I), w (O, I), b (O,) or None)
    linear_backward_input(dout, w) -> dx         dx = dout @ w
    channel_affine(x, scale, shift) -> out       out = x * scale[c] + shift[c]   (an inference batch norm)
    add_relu(a, b) -> out                        out = max(a + b, 0)   (a residual join and its ReLU)
    add(a, b) -> out                             out = a + b   (the gradients of a residual join, summed)

The fused forms (``scale``/``relu``/``residual`` of the forward, ``scale``/``gate``/``clip``/``residual`` of the input
gradient) are
called only by ``minixai.fusion``; the layers call the plain ones.

Shapes: x (N, C, H, W), w (K, C, R, S), b (K,) or None, out/dout (N, K, H', W') with
``H' = 1 + (H + 2P - D(R - 1) - 1) // S``. ``stride``, ``padding``, ``dilation``, ``kernel`` are (int, int)
pairs. ``argmax`` holds, for each pooled output, the flat index ``h * W + w`` of the chosen input pixel in
its (unpadded) plane, as torch's ``return_indices`` does; ties go to the first maximum in scan order.
Select the implementation with ``minixai.set_backend``.
"""
import hashlib
from pathlib import Path

from .sizes import conv_output_size, pool_output_size

__all__ = ["conv_output_size", "pool_output_size"]


def _drop_stale_numba_cache(folder=None):
    """Numba keys a cached kernel on its own file, but the machine code it keeps also holds the kernels it
    calls from other files: after an edit of cpu_gemm.py, cpu.py's cached kernels would still run the old
    product. So the whole cache of this folder goes when any of its sources changes (their hash is kept
    beside the cache). Where Numba keeps the cache is asked of Numba itself; if that fails nothing is done."""
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parent
    sources = sorted(folder.glob("*.py"))
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()
    try:
        from numba.core.caching import CacheImpl
        for locator_class in CacheImpl._locator_classes:
            locator = locator_class.from_function(_drop_stale_numba_cache, str(sources[0]))
            if locator is not None:
                break
        else:
            return
        cache = Path(locator.get_cache_path())
        stamp = cache / "minixai_kernels.sha256"
        if stamp.is_file() and stamp.read_text() == digest:
            return
        for stale in (*cache.glob("*.nbi"), *cache.glob("*.nbc")):
            stale.unlink(missing_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
    except (ImportError, AttributeError, TypeError, OSError):
        pass                    # another Numba, or a read-only cache: Numba's own keys still apply


_drop_stale_numba_cache()
