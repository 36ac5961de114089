"""Fuzz the weights readers (issue 11): hypothesis mutates valid .pth (zip and legacy) and .npz files.

Mutations (tests/fixtures/mutations.py): truncation, byte flips, opcodes spliced into the pickle
(payloads, BUILD, object construction, stray stack opcodes), the pickle's integers rewritten (sizes,
offsets, strides, element counts; huge and negative too), .npy headers rewritten (shape, dtype, order),
and the sizes a zip's central directory declares. For every mutant the reader must either load it
(real, finite arrays) or raise a WeightsFileError naming the file; nothing may run (a payload would
create the marker file), no MemoryError, and each read takes under MAX_SECONDS.

Examples: PTH_EXAMPLES + NPZ_EXAMPLES in all.
"""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fixtures import mutations as M
from minixai import weights as W
from weights_helpers import EXPECTED, FIXTURES

PTH_EXAMPLES = 250
NPZ_EXAMPLES = 150
MAX_SECONDS = 3.0
SIZES = st.one_of(st.integers(-3, 70), st.integers(-2**63, 2**64), st.sampled_from([0, 2**31 - 1, 2**62, 10**12]))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


class Seeds(dict):
    """{file name: bytes}; a short repr keeps hypothesis' failure reports readable."""

    def __repr__(self):
        return f"Seeds({', '.join(self)})"


@pytest.fixture(scope="module")
def seeds(workdir):
    """The valid files that get mutated, as bytes."""
    small = {k: EXPECTED[k] for k in ["0.weight", "0.bias", "1.running_var", "1.num_batches_tracked",
                                      "extra.bool", "extra.half"]}
    W.save_npz(workdir / "seed.npz", small, {"architecture": "tiny"})
    np.savez_compressed(workdir / "seed_compressed.npz", **small)
    return Seeds({"tiny_zip.pth": (FIXTURES / "tiny_zip.pth").read_bytes(),
                  "tiny_legacy.pth": (FIXTURES / "tiny_legacy.pth").read_bytes(),
                  "seed.npz": (workdir / "seed.npz").read_bytes(),
                  "seed_compressed.npz": (workdir / "seed_compressed.npz").read_bytes()})


def mutate_bytes(data, draw):
    """Mutations that know no format: truncate, or flip a few bytes."""
    if draw(st.booleans()):
        return data[: draw(st.integers(0, len(data) - 1))]
    flips = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)), min_size=1, max_size=4))
    out = bytearray(data)
    for at, mask in flips:
        out[at] ^= mask
    return bytes(out)


def mutate_pth(data, draw, marker):
    kind = draw(st.sampled_from(["bytes", "splice", "int", "int", "splice_int", "declared_size"]))
    event(f"mutation: {kind}")
    if kind == "bytes":
        return mutate_bytes(data, draw)
    if kind == "declared_size":
        return M.set_declared_size(data, draw(st.integers(0, 50)), draw(SIZES))
    snippet = draw(st.sampled_from(M.snippets(marker)))
    where, which, value = draw(st.integers(0, 10**4)), draw(st.integers(0, 10**4)), draw(SIZES)
    if kind == "splice":
        return M.edit_pickle(data, lambda pkl: M.splice(pkl, where, snippet))
    if kind == "int":
        return M.edit_pickle(data, lambda pkl: M.set_int(pkl, which, value))
    return M.edit_pickle(data, lambda pkl: M.set_int(M.splice(pkl, where, snippet), which, value))


def mutate_npz(data, draw):
    kind = draw(st.sampled_from(["bytes", "shape", "descr", "fortran", "declared_size"]))
    event(f"mutation: {kind}")
    member = draw(st.integers(0, 20))
    if kind == "bytes":
        return mutate_bytes(data, draw)
    if kind == "shape":
        return M.edit_npy_header(data, member, shape=draw(st.lists(SIZES, max_size=4)))
    if kind == "descr":
        descr = draw(st.sampled_from(["<f4", ">f8", "<c8", "|O", "<U3", "|V4", "<f2", "|b1", "<i8", "<M8[s]",
                                      "[('a', '<f4')]", "zz"]))
        return M.edit_npy_header(data, member, descr=descr)
    if kind == "fortran":
        return M.edit_npy_header(data, member, fortran=True)
    return M.set_declared_size(data, member, draw(SIZES))


def check_read(path, marker):
    """The property: a clean load or a clear refusal, quickly, and nothing executed."""
    start = time.perf_counter()
    try:
        state, _ = W.load(path)
    except W.WeightsFileError as err:
        assert str(path) in str(err) and "\n" not in str(err), str(err)
        event(f"refused: {type(err).__name__}")
    else:
        event("loaded")
        assert all(isinstance(k, str) and isinstance(v, np.ndarray) and v.dtype.kind in "biuf"
                   for k, v in state.items())
        assert all(np.isfinite(v).all() for v in state.values() if v.dtype.kind == "f")
    assert time.perf_counter() - start < MAX_SECONDS
    assert not marker.exists()


@settings(max_examples=PTH_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(["tiny_zip.pth", "tiny_legacy.pth"]), data=st.data())
def test_mutated_pth_is_loaded_or_refused_cleanly(seeds, workdir, seed, data):
    marker = workdir / "pwned"
    mutant = mutate_pth(seeds[seed], data.draw, marker)
    path = workdir / "mutant.pth"
    path.write_bytes(mutant)
    check_read(path, marker)


@settings(max_examples=NPZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(["seed.npz", "seed_compressed.npz"]), data=st.data())
def test_mutated_npz_is_loaded_or_refused_cleanly(seeds, workdir, seed, data):
    marker = workdir / "pwned"
    path = workdir / "mutant.npz"
    path.write_bytes(mutate_npz(seeds[seed], data.draw))
    check_read(path, marker)


def test_the_mutations_reach_the_reader(seeds, workdir):
    """The structured mutations produce files the reader parses deep inside (not only CRC failures):
    a rewritten stride gives an out-of-bounds refusal, a rewritten header a size mismatch, a spliced
    payload a refused global."""
    def message(data, name):
        path = workdir / name
        path.write_bytes(data)
        with pytest.raises(W.WeightsFileError) as caught:
            W.load(path)
        return str(caught.value)

    ints = [i for i, (_, name, _) in enumerate(M.pickle_ops(M.zip_members(seeds["tiny_zip.pth"])
                                                            ["tiny_zip/data.pkl"])) if name in M.INT_OPCODES]
    assert ints
    bigger = M.edit_pickle(seeds["tiny_zip.pth"], lambda pkl: M.set_int(pkl, 3, 10**6))
    assert "reaches element" in message(bigger, "big.pth") or "holds" in message(bigger, "big.pth")
    payload = M.edit_pickle(seeds["tiny_legacy.pth"], lambda pkl: M.splice(pkl, 1, M.snippets("x")[0]))
    assert "posix.system" in message(payload, "payload.pth")
    shaped = M.edit_npy_header(seeds["seed.npz"], 0, shape=(10**12,))
    assert "declares shape" in message(shaped, "shaped.npz")
