"""Arrays in and out of the CPU kernels: inputs made contiguous, outputs reused from call to call.

A freshly allocated large array is mapped page by page by the kernel on first touch, and the pages come
zeroed. Measured here on one ReLU over an (8, 64, 224, 224) float32 tensor: 48 ms into a fresh output,
8 ms into memory that was already mapped. A forward and backward pass of VGG-16 at batch 8 allocates
dozens of such arrays, so the kernels take their large outputs from this pool instead of ``np.empty``.

The pool owns flat byte blocks and hands out views of them. A view keeps its block alive, and NumPy
points every view (and view of a view) straight at the block, so a block whose only references are the
pool's own is idle and can be handed out again: no bookkeeping when arrays die, whoever holds them.
Idle blocks are kept up to ``IDLE_LIMIT`` bytes, and arrays larger than that are plain ``np.empty``
(IG's whole batch of path images should not sit idle); `release` hands idle blocks back to the system.
Work buffers inside a kernel call come from `work_buffer` (one per name and Python thread), the default
scale and bias of an epilogue from `filled` (made once).
"""
import functools
import math
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 18          # smaller arrays come from malloc's free lists. Not 4 MiB: batch 1's activations
                             # (ResNet-50's are 0.4-3.2 MB) then came from malloc, which maps them fresh when a
                             # tape still holds the last pass's (Grad-CAM's submodels while the model keeps its
                             # tape: ResNet-50's batch-1 Grad-CAM 29.5 -> 25.9 ms, Guided Grad-CAM 63.0 -> 56.8, a
                             # forward after them 32.1 -> 25.6; batch-8 DeepLIFT 1373 -> 1034; batch-1 DeepLIFT
                             # 1.02-1.04x)
IDLE_LIMIT = 1 << 28         # bytes of idle blocks kept for reuse at most (256 MiB: VGG-16 at batch 8 ran
                             # as fast as with 2 GiB, and large batches keep their memory)

_lock = threading.Lock()
_blocks = {}                 # size in bytes -> [uint8 block, ...]


def _refs(blocks, i):
    return sys.getrefcount(blocks[i])


_IDLE_REFS = _refs([np.empty(1, np.uint8)], 0)      # the count of a block nobody but the pool holds
# Free-threaded CPython defers reference counting: there a count is no proof that a block is idle
_ENABLED = getattr(sys, "_is_gil_enabled", lambda: True)()


def empty(shape, dtype):
    """Like ``np.empty(shape, dtype)`` (C order), reusing an idle block of the same size if there is one."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize         # (np.prod: 2 us, a few % of a batch-1 pass's time)
    if not _ENABLED or nbytes < MIN_BYTES or nbytes > IDLE_LIMIT:   # too big to be kept idle anyway
        return np.empty(shape, dtype)
    with _lock:
        same = _blocks.setdefault(nbytes, [])
        idle = next((i for i in range(len(same)) if _refs(same, i) == _IDLE_REFS), None)
        if idle is not None:
            block = same[idle]
        else:
            _evict(IDLE_LIMIT - nbytes)
            block = np.empty(nbytes, np.uint8)
            same.append(block)
    return block.view(dtype).reshape(shape)


def _evict(keep):
    """Drop idle blocks, largest first, until at most `keep` idle bytes remain."""
    idle = sorted(((size, i) for size, blocks in _blocks.items() for i in range(len(blocks))
                   if _refs(blocks, i) == _IDLE_REFS), reverse=True)
    total = sum(size for size, _ in idle)
    dropped = {}
    for size, i in idle:
        if total <= max(keep, 0):
            break
        dropped.setdefault(size, set()).add(i)
        total -= size
    for size, indices in dropped.items():
        _blocks[size] = [b for i, b in enumerate(_blocks[size]) if i not in indices]


def release():
    """Hand every idle block back to the system (arrays still in use keep theirs)."""
    with _lock:
        _evict(0)


def idle_bytes():
    """Bytes held by the pool that no array uses at the moment."""
    with _lock:
        return sum(size for size, blocks in _blocks.items() for i in range(len(blocks))
                   if _refs(blocks, i) == _IDLE_REFS)


def contiguous(*arrays):
    """C-contiguous arrays of the first one's dtype (every new layout or dtype would compile again)."""
    dtype = arrays[0].dtype if arrays[0].dtype in (np.float32, np.float64) else np.float64
    return [None if a is None else np.ascontiguousarray(a, dtype=dtype) for a in arrays]


_scratch = threading.local()


def work_buffer(name, size, dtype):
    """A reusable flat work buffer (per Python thread): fresh buffers cost page faults on every call."""
    key = (name, np.dtype(dtype))
    buf = getattr(_scratch, "buffers", {}).get(key)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1), dtype)
        _scratch.__dict__.setdefault("buffers", {})[key] = buf
    return buf[:size]


@functools.lru_cache(maxsize=256)
def filled(value, n, dtype):
    """np.full(n, value, dtype), made once per (value, n, dtype): an epilogue's default scale (1) and bias (0),
    which the kernels only read (a small array per call costs about a microsecond, some hundred times a pass)."""
    return np.full(n, value, dtype)
