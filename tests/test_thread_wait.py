"""How Numba's OpenMP threads wait between kernels (minixai.backend._choose_thread_wait): spin briefly on a
machine with a free core per thread, sleep at once on a busy one, and leave a user's own setting alone."""
import json
import os
import subprocess
import sys

import pytest

from minixai import backend

CHOOSE = r"""
import json, os
import numpy as np
import minixai as mx
from minixai import backend, models
mx.saliency(models.load("shapes", weights="pretrained"), np.zeros((1, 3, 64, 64), np.float32), 0)
print(json.dumps({"wait": backend.THREAD_WAIT, "policy": os.environ.get("OMP_WAIT_POLICY"),
                  "spin": os.environ.get("GOMP_SPINCOUNT")}))
"""


def choose_in_subprocess(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run([sys.executable, "-c", CHOOSE], env={**clean, **env}, capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_first_kernel_sets_one_policy_and_says_which():
    chosen = choose_in_subprocess()
    if chosen["wait"].startswith("spin"):
        assert chosen["spin"] == str(backend.SPIN_COUNT) and chosen["policy"] is None
    else:
        assert chosen["wait"].startswith("sleep at once") and chosen["policy"] == "PASSIVE"
        assert chosen["spin"] is None


@pytest.mark.parametrize("env", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "100"}])
def test_a_users_setting_wins(env):
    chosen = choose_in_subprocess(**env)
    assert chosen["wait"].startswith("as set in the environment")
    assert chosen["policy"] == env.get("OMP_WAIT_POLICY") and chosen["spin"] == env.get("GOMP_SPINCOUNT")


@pytest.mark.parametrize("others, spins", [(0, True), (1, False), (None, False)])
def test_spin_only_with_a_free_core_per_thread(monkeypatch, others, spins):
    """With the run queue read as `others` other runnable processes, on 2 cores and 2 Numba threads."""
    monkeypatch.setattr(backend, "THREAD_WAIT", None)
    monkeypatch.setattr(backend, "_other_runnable", lambda: others)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr("numba.config.NUMBA_NUM_THREADS", 2)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    backend._choose_thread_wait()
    assert ("GOMP_SPINCOUNT" in os.environ) == spins and ("OMP_WAIT_POLICY" in os.environ) == (not spins)
    assert backend.THREAD_WAIT.startswith("spin" if spins else "sleep at once")


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="no /proc/loadavg on this system")
def test_a_busy_process_is_seen_on_the_run_queue():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time
        time.sleep(0.3)
        assert backend._other_runnable() >= 1
    finally:
        busy.kill()
        busy.wait()
