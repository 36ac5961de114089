"""The benchmark scripts' own accounting, run once, small. They wrap the kernels to time them: a wrapper that
forgets an argument the kernels gained breaks them (as conv_peak.py's did when the input gradient took the
shortcut's gradient), and a share of the peak is only as true as the flop count under it."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from minixai import models
from minixai.layers import Conv2d

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conv_peak_times_every_convolution_of_resnet50_and_counts_its_flops():
    stats, total, conv_seconds = load("conv_peak").profile(batch=1, reps=3)
    # what a direct convolution does, from each Conv2d's shapes: 2 C R S multiply-adds per output, forward, and as
    # many for the input gradient (a saliency pass needs it down to the image, the first layer's too)
    model = models.resnet50(seed=0)
    names = [name for name, layer in model.named_layers() if isinstance(layer, Conv2d)]
    outputs = model.activations(np.zeros((1, 3, 224, 224), np.float32), names)
    flops = sum(2.0 * outputs[name].size * model[name].weight[0].size for name in names)
    assert len(names) == 53
    for direction in ("forward", "input gradient"):
        rows = {kind: value for (d, kind), value in stats.items() if d == direction}
        assert set(rows) == {"first (7x7/2)", "1x1 stride 1", "1x1 stride 2", "3x3 stride 1", "3x3 stride 2"}
        assert all(seconds > 0 for seconds, _ in rows.values())
        assert sum(f for _, f in rows.values()) == flops
    # the table is the pass whose convolutions took the median time; each pass's convolutions are part of it
    assert sum(seconds for seconds, _ in stats.values()) == pytest.approx(sorted(conv_seconds)[1])
    assert len(conv_seconds) == 3 and sorted(conv_seconds)[1] < total


def test_bandwidth_loops_do_the_work_whose_bytes_they_count():
    # GB/s is bytes over time: a loop that the compiler could drop, or that touched less than it is credited
    # with, would report a bandwidth the machine does not have
    bandwidth = load("bandwidth")
    a, b = np.arange(1000, dtype=np.float32), np.full(1000, 3.0, np.float32)
    out = np.zeros(1000, np.float32)
    assert bandwidth._sum(a) == a.sum()
    bandwidth._axpy(a, b, out)
    np.testing.assert_array_equal(out, 2 * a + b)
    bandwidth._copy(b, out)
    np.testing.assert_array_equal(out, b)


def test_methods_separate_times_each_engine_in_a_process_of_its_own(monkeypatch):
    # --separate: a child process per engine and round, which times only its engine's calls of each row and
    # answers one JSON line; the parent reads it back by (method, peer)
    import argparse
    import pytest
    pytest.importorskip("captum")
    monkeypatch.syspath_prepend(str(BENCHMARKS))          # methods.py imports its neighbour _memory
    methods = load("methods")
    args = argparse.Namespace(methods=["saliency"], steps=2, samples=2, evaluations=4, grid=2, gradient_samples=2,
                              perturbation_batch=2, cam_batch=2, batch_size=None)
    for engine in ("mx", "peer"):
        times = methods.engine_process(engine, "resnet50", args)
        assert set(times) == {("saliency", "Captum")}
        assert 0 < times["saliency", "Captum"] < 60
