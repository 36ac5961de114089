"""Peak-memory helpers shared by the benchmarks (Linux /proc; one subprocess per measurement)."""
import ctypes
import gc
import sys


def status_kb(field):
    """A field of /proc/self/status in kB, e.g. VmRSS (resident now) or VmHWM (peak resident)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def release_freed_memory():
    """Collect garbage and hand freed heap pages, and the idle blocks of minixai's output pool, back to
    the system, so RSS is a fair baseline."""
    gc.collect()
    pool = sys.modules.get("minixai.kernels.cpu_memory")
    if pool is not None:
        pool.release()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
