"""The output pool of the CPU kernels: a block is handed out again only when no array uses it."""
import numpy as np
import pytest

from minixai.kernels import cpu_memory as pool


def address(a):
    return a.__array_interface__["data"][0]


@pytest.fixture
def small_pool(monkeypatch):
    monkeypatch.setattr(pool, "MIN_BYTES", 1024)
    monkeypatch.setattr(pool, "_blocks", {})
    return pool


def test_small_and_huge_arrays_are_plain(small_pool, monkeypatch):
    a = small_pool.empty((3, 4), np.float32)
    assert a.shape == (3, 4) and a.dtype == np.float32 and a.base is None
    monkeypatch.setattr(small_pool, "IDLE_LIMIT", 4096)
    huge = small_pool.empty((2, 1024), np.float32)           # 8192 bytes: more than may be kept idle
    assert huge.base is None and small_pool.idle_bytes() == 0


def test_a_block_in_use_is_never_shared(small_pool):
    a = small_pool.empty((2, 256), np.float64)
    a[:] = 1.0
    b = small_pool.empty((2, 256), np.float64)
    assert not np.shares_memory(a, b)
    b[:] = 2.0
    assert (a == 1.0).all()


def test_a_view_keeps_its_block_busy(small_pool):
    a = small_pool.empty((4, 128), np.float32)
    view = a[1:, ::2].T
    first = address(a)
    del a
    b = small_pool.empty((4, 128), np.float32)
    second = address(b)
    assert second != first                     # the view still uses the first block
    del view, b
    assert small_pool.idle_bytes() == 2 * 2048
    c = small_pool.empty((4, 128), np.float32)
    assert address(c) in {first, second} and small_pool.idle_bytes() == 2048


def test_an_idle_block_is_reused_with_any_dtype_and_shape(small_pool):
    a = small_pool.empty((8, 64), np.float32)
    first = address(a)
    del a
    b = small_pool.empty((256,), np.float64)            # the same 2048 bytes
    assert address(b) == first and b.shape == (256,) and b.dtype == np.float64
    assert b.flags.c_contiguous and b.flags.writeable


def test_idle_blocks_are_bounded_and_released(small_pool, monkeypatch):
    monkeypatch.setattr(small_pool, "IDLE_LIMIT", 5000)
    arrays = [small_pool.empty((n,), np.uint8) for n in (2000, 3000, 4000)]
    del arrays
    assert small_pool.idle_bytes() == 9000            # nothing evicted while in use
    small_pool.empty((1500,), np.uint8)               # a miss evicts the largest idle blocks first
    assert small_pool.idle_bytes() <= 5000 - 1500
    small_pool.release()
    assert small_pool.idle_bytes() == 0
