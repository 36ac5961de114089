"""One model serves many threads: every pass keeps its state on its own tape (minixai.tape), never on the
layers, so concurrent explanations with ONE model give exactly what they give one after the other."""
import threading

import numpy as np

import minixai as mx
from minixai import models

THREADS, CALLS = 4, 20


def jobs(model, images, labels):
    """The calls one thread makes: every kind of pass (plain, fused, kept inputs, captures, sub-models,
    optimisation loops), each on an image of its own."""
    def call(k):
        x, y = images[k % len(images)][None], int(labels[k % len(labels)])
        kind = k % 7
        if kind == 0:
            return mx.saliency(model, x, y)
        if kind == 1:
            return mx.integrated_gradients(model, x, y, steps=8, progress=False)
        if kind == 2:
            return mx.gradcam(model, x, y)
        if kind == 3:
            return mx.lrp(model, x, y)
        if kind == 4:
            return mx.deeplift(model, x, y)
        if kind == 5:
            return mx.counterfactual(model, x, (y + 1) % 5, steps=6, threshold=1.0, progress=False).image
        return mx.maximize_filter(model, "features.6", filter=k % 32, steps=4, size=32, seed=k).raw
    return call


def test_one_model_from_four_threads_is_bit_identical_to_serial():
    model = models.load("shapes")
    batch = mx.data.shapes.generate(n=THREADS * CALLS, seed=5)
    call = jobs(model, batch.images, batch.labels)
    work = [[t * CALLS + i for i in range(CALLS)] for t in range(THREADS)]
    serial = {k: call(k) for calls in work for k in calls}

    results, errors = {}, []
    start = threading.Barrier(THREADS)

    def worker(calls):
        start.wait()                              # all threads run at once
        try:
            for k in calls:
                results[k] = call(k)
        except Exception as e:                    # reported below: a thread's exception would vanish
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(calls,)) for calls in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results.keys() == serial.keys()
    different = [k for k in serial if not np.array_equal(results[k], serial[k])]
    assert not different, f"calls {different} differ from the serial run"


def test_forward_and_backward_pair_up_per_thread():
    """model(x) then model.backward(...) in each thread: each thread's backward goes through its own pass."""
    model = models.load("shapes")
    x = mx.data.shapes.generate(n=8, seed=6).images
    seed = np.zeros((1, 5), np.float32)
    seed[0, 2] = 1
    expected = [model.backward(seed, tape=model.record(x[i:i + 1])) for i in range(8)]
    got, barrier = {}, threading.Barrier(8)

    def worker(i):
        model(x[i:i + 1])
        barrier.wait()                            # every thread has run its forward before any backward
        got[i] = model.backward(seed)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        np.testing.assert_array_equal(got[i], expected[i])
