"""Two checkouts of minixai against each other, interleaved: what a change did to the engine's speed.

    git worktree add /tmp/before <commit>
    python benchmarks/engine_ab.py /tmp/before                      # resnet50, batch 1 and 8, 3 rounds
    python benchmarks/engine_ab.py /tmp/before --archs vgg16 --batches 8 --rounds 5

Each measurement is a fresh process that imports minixai from one tree ("before": the path given, "after":
the tree this script is in), runs a warm-up, then times forward passes and forward + input-gradient passes
(median of its passes); the trees alternate, their order flipping every round, and the table gives the
medians over rounds and after / before. Same machine, same BLAS choice, same inputs: the ratio is the
change, with the machine's drift spread over both. Where minixai is installed in editable mode, its import
hook maps ``minixai.kernels`` (and the other top-level folders) to the installed tree; the child redirects
that mapping to the tree it measures, and checks that both the package and its kernels came from there.
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from engine_separate import MINIXAI, SIZE

# The tree to measure first (argv[5]): an editable install's hook is pointed at it before minixai is imported;
# then engine_separate's timing of the minixai engine, unchanged; then a check of where minixai came from.
REDIRECT = r"""
import sys
tree = sys.argv[5]
sys.path.insert(0, tree)
for finder in sys.meta_path:                          # an editable install's hook: point it at this tree
    mapping = getattr(sys.modules.get(getattr(finder, "__module__", ""), None), "MAPPING", None)
    if isinstance(mapping, dict) and "minixai" in mapping:
        root = str(__import__("pathlib").Path(mapping["minixai"]).parent)
        mapping.update({k: v.replace(root, tree, 1) for k, v in mapping.items()})
"""
CHECK = r"""
from minixai.kernels import cpu
assert mx.__file__.startswith(tree) and cpu.__file__.startswith(tree), (mx.__file__, cpu.__file__)
"""
CHILD = REDIRECT + MINIXAI + CHECK


def measure(tree, arch, batch, reps):
    size = str(SIZE.get(arch, 224))                  # Inception v3 at its 299x299
    result = subprocess.run([sys.executable, "-c", CHILD, arch, str(batch), str(reps), size, str(tree)],
                            capture_output=True, text=True, cwd="/")
    if result.returncode:
        raise SystemExit(f"{tree}: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="a checkout of the earlier version (git worktree add ...)")
    parser.add_argument("--archs", nargs="+", default=["resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": Path(__file__).resolve().parents[1]}
    print(f"before: {trees['before']}; after: {trees['after']}; {args.rounds} rounds, medians")
    print("| model | batch | pass | before | after | after / before |")
    print("|---|---|---|---|---|---|")
    for arch in args.archs:
        for batch in args.batches:
            times = {name: [] for name in trees}
            for r in range(args.rounds):
                for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    times[name].append(measure(trees[name], arch, batch, 7 if batch == 1 else 3))
            for key in ("forward", "input grad"):
                before, after = (statistics.median(t[key] for t in times[name]) for name in ("before", "after"))
                print(f"| {arch} | {batch} | {key} | {before * 1e3:.1f} ms | {after * 1e3:.1f} ms "
                      f"| {after / before:.3f} |", flush=True)


if __name__ == "__main__":
    main()
