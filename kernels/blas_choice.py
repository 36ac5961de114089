"""Which BLAS library the CPU kernels call: chosen by measurement on this machine, not by vendor name.

Candidates:
  "openblas"          SciPy's OpenBLAS, with the kernels OpenBLAS itself picked for this CPU;
  "openblas-avx512"   a private copy of that same library file, loaded with OPENBLAS_CORETYPE=SKYLAKEX so that it
                      runs its AVX-512 kernels. Offered on CPUs with AVX-512 for which OpenBLAS picked an older
                      core: OpenBLAS 0.3.30 takes AMD's Zen 5 for a Haswell (AVX2), whose single-threaded sgemm ran
                      at 120 GF/s here against 213 GF/s for the AVX-512 kernels of the same library;
  "mkl"               Intel MKL from the optional `mkl` wheel, in its sequential layer (on AMD CPUs it runs AVX2
                      code: 107 GF/s here).
At the first import on a machine each candidate times single-threaded sgemm on the matrix shapes of the
convolutions (`SHAPES`), the fastest is kept, and the choice is cached in a small JSON file next to Numba's
cache of the kernels (keyed by the CPU and the library files, so a new CPU or library measures again).
The candidates take turns on each shape, ROUNDS times, and each keeps its best time: measured one after the
other, a slow spell of this shared machine that fell on one of them decided the choice, and was cached with it
(the tiled GEMM of commit 4fd7d6b measured 191 GF/s against the BLAS's 207 once, 234-242 against 196-202 in
three later runs, and ResNet-50's batch-1 forward took 36 ms instead of 33 on the BLAS that run chose).
MINIXAI_BLAS=openblas|openblas-avx512|mkl forces one; `choose()` says which and why.

In front of the library stands minixai's own tiled GEMM (``cpu_gemm``), for the products whose B is not
transposed: `choose_tiled()` times it on the same shapes against the library's number and keeps it if it is
faster (cached in the same file). MINIXAI_GEMM=tiled|blas forces the one or the other.
"""
import ctypes
import functools
import importlib.metadata
import json
import os
import shutil
import time
from pathlib import Path, PurePath

import numpy as np

ROUTINES = ("sgemm", "dgemm", "sgemv", "dgemv")
NAMES = ("openblas", "openblas-avx512", "mkl")
AVX512_CORES = ("SKYLAKEX", "COOPERLAKE", "SAPPHIRERAPIDS")
# (M, N, K) of row-major C = A @ B as the convolutions call them: output channels x positions x depth
SHAPES = [(64, 3136, 576), (256, 3136, 64), (128, 784, 1152), (512, 784, 128), (256, 196, 2304), (1024, 196, 256),
          (512, 49, 4608), (2048, 49, 512)]
ROUNDS = 5                   # turns per candidate and shape; the best counts
_MKL_SEQUENTIAL = 1          # MKL_THREADING_SEQUENTIAL: MKL never starts threads of its own
_FORTRAN_GEMM = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)


class Library:
    """A loaded BLAS: the addresses of ROUTINES (Fortran ABI, every argument a pointer) and where it came from."""

    def __init__(self, name, addresses, files, handle=None):
        self.name, self.addresses, self.files, self.handle = name, addresses, files, handle

    def product(self, a, b, c):
        """A call that sets C = A @ B with this library's sgemm (for `shapes_gflops`)."""
        return _fortran_call(_FORTRAN_GEMM(self.addresses["sgemm"]), a, b, c)


def shapes_gflops(products):
    """{name: GF/s} on SHAPES for each ``products[name](a, b, c)``, a call that sets C = A @ B on the float32
    row-major a (m, k), b (k, n), c (m, n): total flops over the sum of each shape's best time. On each shape
    the candidates take turns, ROUNDS times, so that no slow spell of the machine falls on one alone."""
    rng = np.random.default_rng(0)
    flops, seconds = 0.0, dict.fromkeys(products, 0.0)
    for m, n, k in SHAPES:
        a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32)
        outputs = {name: np.empty((m, n), np.float32) for name in products}    # alive while the calls write
        calls = {name: product(a, b, outputs[name]) for name, product in products.items()}
        best = dict.fromkeys(products, np.inf)
        for call in calls.values():
            call()                                  # first touch of C, code paths warmed
        for _ in range(ROUNDS):
            for name, call in calls.items():
                best[name] = min(best[name], _timed(call))
        seconds = {name: seconds[name] + best[name] for name in products}
        flops += 2.0 * m * n * k
    return {name: flops / seconds[name] / 1e9 for name in products}


def _fortran_call(gemm, a, b, c):
    """C = A @ B (row-major) as column-major BLAS sees it: C^T = B^T A^T."""
    m, k = a.shape
    n = b.shape[1]
    keep = [ctypes.c_char(b"N"), ctypes.c_char(b"N"), ctypes.c_int(n), ctypes.c_int(m), ctypes.c_int(k),
            ctypes.c_float(1.0), ctypes.c_int(n), ctypes.c_int(k), ctypes.c_float(0.0), ctypes.c_int(n)]
    ta, tb, n_, m_, k_, one, ldb, lda, zero, ldc = (ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in keep)
    pointers = (ta, tb, n_, m_, k_, one, b.ctypes.data, ldb, a.ctypes.data, lda, zero, c.ctypes.data, ldc)

    def call():
        gemm(*pointers)
    call.keep = keep                # the values the pointers point to live as long as the call
    return call


def _timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


# ---- the candidates -----------------------------------------------------------------------------------------
def scipy_openblas():
    """SciPy's OpenBLAS as SciPy loaded it (its cython_blas entry points)."""
    from numba.extending import get_cython_function_address
    addresses = {r: get_cython_function_address("scipy.linalg.cython_blas", r) for r in ROUTINES}
    return Library("openblas", addresses, [str(_scipy_openblas_file())])


def _scipy_openblas_file():
    import scipy
    folder = Path(scipy.__file__).resolve().parent.parent / "scipy.libs"
    found = sorted(folder.glob("libscipy_openblas*.so*")) if folder.is_dir() else []
    return found[0] if found else None


def _cpu():
    """(model name, flags) from /proc/cpuinfo; empty where there is none (other systems)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", set()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields.get("model name", ""), set(fields.get("flags", "").split())


def openblas_avx512(cache):
    """A private copy of SciPy's OpenBLAS on its AVX-512 kernels, or None where that cannot help or work."""
    _, flags = _cpu()
    source = _scipy_openblas_file()
    if source is None or not {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"} <= flags:
        return None
    shared = ctypes.CDLL(str(source))                  # the handle SciPy already has: its core name
    shared.scipy_openblas_get_corename.restype = ctypes.c_char_p
    if shared.scipy_openblas_get_corename().decode().upper() in AVX512_CORES:
        return None                                    # OpenBLAS took the AVX-512 kernels itself
    copy = cache / f"avx512-{source.name}"
    if not copy.is_file() or copy.stat().st_size != source.stat().st_size:
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy.with_suffix(".part"))
        os.replace(copy.with_suffix(".part"), copy)
    saved = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")}
    os.environ.update(OPENBLAS_CORETYPE="SKYLAKEX", OPENBLAS_NUM_THREADS="1")   # read when the copy loads
    try:
        lib = ctypes.CDLL(str(copy))                   # another file: a second, separate instance
    except OSError:
        return None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    if lib.scipy_openblas_get_corename().decode().upper() not in AVX512_CORES:
        return None
    addresses = {r: ctypes.cast(getattr(lib, f"scipy_{r}_"), ctypes.c_void_p).value for r in ROUTINES}
    return Library("openblas-avx512", addresses, [str(source)], handle=lib)


def mkl():
    """libmkl_rt from the `mkl` wheel in its sequential layer, or None without the wheel."""
    try:
        dist = importlib.metadata.distribution("mkl")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if PurePath(file).name.startswith(("libmkl_rt.so", "mkl_rt")):
            path = str(dist.locate_file(file))
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            lib.MKL_Set_Threading_Layer(ctypes.c_int(_MKL_SEQUENTIAL))
            addresses = {r: ctypes.cast(getattr(lib, r + "_"), ctypes.c_void_p).value for r in ROUTINES}
            return Library("mkl", addresses, [path], handle=lib)
    return None


# ---- the choice ---------------------------------------------------------------------------------------------
def cache_dir():
    """Next to Numba's cache of the kernels (kernels/__pycache__) if it can be written, else $MINIXAI_HOME."""
    here = Path(__file__).resolve().parent / "__pycache__"
    try:
        here.mkdir(exist_ok=True)
        if os.access(here, os.W_OK):
            return here
    except OSError:
        pass
    return Path(os.environ.get("MINIXAI_HOME") or "~/.cache/minixai").expanduser()


def choose():
    """(Library, reason): the one MINIXAI_BLAS names, else the fastest measured (cached per CPU and files)."""
    wanted = os.environ.get("MINIXAI_BLAS", "auto").lower()
    if wanted not in ("auto", *NAMES):
        raise ValueError(f"MINIXAI_BLAS={wanted!r}; valid: auto, {', '.join(NAMES)}")
    cache = cache_dir()
    loaders = {"openblas": scipy_openblas, "openblas-avx512": lambda: openblas_avx512(cache), "mkl": mkl}
    if wanted != "auto":
        library = loaders[wanted]()
        if library is None:
            raise ValueError(f"MINIXAI_BLAS={wanted}: that library is not available on this machine")
        return library, f"MINIXAI_BLAS={wanted}"
    candidates = [lib for lib in (loader() for loader in loaders.values()) if lib is not None]
    if len(candidates) == 1:
        return candidates[0], "the only BLAS available"
    model, flags = _cpu()
    key = json.dumps([model, "avx512f" in flags, sorted(f"{lib.name}:{f}:{_stamp(f)}" for lib in candidates
                                                        for f in lib.files), f"rounds {ROUNDS}"])
    record = cache / "minixai_blas.json"
    known = _read(record)
    if key not in known:
        known[key] = _measured({lib.name: lib.product for lib in candidates})
        _write(record, known)
    speeds = known[key]
    best = max(candidates, key=lambda lib: speeds.get(lib.name, 0.0))
    shown = ", ".join(f"{name} {gf:.0f}" for name, gf in sorted(speeds.items(), key=lambda kv: -kv[1]))
    return best, f"fastest single-threaded sgemm on the convolutions' shapes here (GF/s: {shown}; {record})"


def choose_tiled(library):
    """(use the tiled GEMM?, reason): MINIXAI_GEMM if set, else whether it beats `library` on SHAPES."""
    from . import cpu_gemm
    wanted = os.environ.get("MINIXAI_GEMM", "auto").lower()
    if wanted not in ("auto", "tiled", "blas"):
        raise ValueError(f"MINIXAI_GEMM={wanted!r}; valid: auto, tiled, blas")
    if wanted != "auto" or cpu_gemm.SHAPE is None:
        if wanted == "tiled" and cpu_gemm.SHAPE is None:
            raise ValueError("MINIXAI_GEMM=tiled: the tiled GEMM needs AVX2 and FMA, which this CPU lacks")
        return wanted == "tiled", f"MINIXAI_GEMM={wanted}" if wanted != "auto" else "no AVX2 and FMA here"
    model, flags = _cpu()
    key = json.dumps([model, sorted(flags & {"avx512f", "avx2", "fma"}), "tiled", list(cpu_gemm.SHAPE),
                      f"{library.name}:{':'.join(f'{f}:{_stamp(f)}' for f in library.files)}", f"rounds {ROUNDS}"])
    record = cache_dir() / "minixai_blas.json"
    known = _read(record)
    if key not in known:
        cpu_gemm.switch(True)
        try:
            known[key] = _measured({"tiled": _tiled_product, library.name: library.product})
        finally:
            cpu_gemm.switch(False)
        _write(record, known)
    speeds = known[key]
    faster = speeds["tiled"] > speeds[library.name]
    return faster, (f"single-threaded on the convolutions' shapes: tiled {speeds['tiled']:.0f} GF/s, "
                    f"{library.name} {speeds[library.name]:.0f} ({record})")


def _measured(products):
    """`shapes_gflops(products)` with every BLAS on one thread, rounded for the cache file."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1, user_api="blas"):
        return {name: round(gflops, 1) for name, gflops in shapes_gflops(products).items()}


def _tiled_product(a, b, c):
    """A call that sets C = A @ B with cpu_gemm.tiled_gemm (the switch must be on when it runs)."""
    from . import cpu_gemm
    (m, k), n = a.shape, b.shape[1]
    return functools.partial(cpu_gemm.tiled_gemm, False, m, n, k, a.ravel(), 0, k, b.ravel(), 0, n, 0.0, c.ravel(),
                             0, n)


def _stamp(file):
    try:
        st = os.stat(file)
        return f"{st.st_size}-{int(st.st_mtime)}"
    except OSError:
        return "?"


def _read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _write(path, data):
    try:
        tmp = Path(path).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass                                # an unwritable cache only means measuring again next time
