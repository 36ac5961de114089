"""The evaluation table and figure of the README: every method and both controls against every metric of
minixai.evaluation, on 200 held-out images of the shapes world, the true class explained.

    python examples/evaluation_report.py          # about 15 minutes on 2 cores
    python examples/evaluation_report.py -n 50    # a quicker look

Writes examples/figures/evaluation.png (mean deletion/insertion curves, the cascading randomisation grid of
the first image) and prints the table in Markdown. The same as `minixai evaluate --images 200 --markdown`.
"""
import argparse
import json
import time
from pathlib import Path

from minixai import models, viz
from minixai.data import shapes
from minixai.evaluation.report import evaluate
from minixai.train_shapes import TEST_SEED

FIGURES = Path(__file__).resolve().parent / "figures"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="held-out images (default 200)")
    parser.add_argument("--json", type=Path, help="also write the means and timings here")
    args = parser.parse_args()
    start = time.perf_counter()
    report = evaluate(models.load("shapes"), shapes.generate(args.n, seed=TEST_SEED))
    path = viz.save(report.figure(), FIGURES / "evaluation.png")
    print(f"{args.n} held-out shapes images (seed {TEST_SEED}), {time.perf_counter() - start:.0f} s")
    print(report.table(markdown=True))
    print()
    print(report.legend())
    print()
    print(report.cascade_table(markdown=True))
    print(f"wrote {path}")
    if args.json:
        cascade = {name: values.tolist() for name, values in report.cascade.items()}
        random_deletion = report.curves["random"][0].curve.mean(axis=0).tolist()
        args.json.write_text(json.dumps({"means": report.means(), "cascade": cascade, "layers": report.layers,
                                         "random_deletion_curve": random_deletion, "seconds": report.seconds},
                                        indent=2))


if __name__ == "__main__":
    main()
