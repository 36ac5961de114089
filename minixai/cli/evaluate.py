"""`minixai evaluate`: which explanation can I trust? Every method against every metric on held-out
images of the shapes world (ground-truth masks), with a random map and an edge detector as controls."""
import json
from pathlib import Path

from .common import held_out_shapes, methods


def cmd_evaluate(args):
    from minixai import viz
    from minixai.evaluation.report import DEFAULT_METHODS, evaluate
    from minixai.models import load
    from minixai.train_shapes import TEST_SEED
    batch = held_out_shapes(args.model, args.images, "evaluate scores localisation against the shapes world's "
                            "object masks", "call the functions of minixai.evaluation from Python")
    chosen = methods(args.methods) if args.methods else list(DEFAULT_METHODS)
    report = evaluate(load("shapes"), batch, chosen, batch_size=args.batch_size, seed=args.seed,
                      progress=not args.json)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viz.save(report.figure(), out)
    if args.json:
        print(json.dumps({"images": args.images, "figure": str(out), "means": report.means(),
                          "seconds": report.seconds}, indent=2))
        return
    print(f"{args.images} held-out shapes images (seed {TEST_SEED}), the true class explained; mean per image:")
    print(report.table(markdown=args.markdown))
    print()
    print(report.legend())
    print()
    print("mean Spearman correlation of |map| with the trained model's along the cascading randomisation:")
    print(report.cascade_table(markdown=args.markdown))
    print(f"wrote {out}")


def register(sub):
    p = sub.add_parser("evaluate", help="every method x every metric on held-out shapes images: table and figure")
    p.add_argument("--model", default="shapes", help="shapes (the metrics need the world's object masks)")
    p.add_argument("--methods", help="comma-separated names of mx.METHODS (default: the ten classic methods)")
    p.add_argument("--images", type=int, default=50, help="number of held-out shapes images (default 50)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass of the perturbations")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise, random weights and the random map")
    p.add_argument("--out", default="evaluation.png", help="the figure: curves and the randomisation grid")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", action="store_true", help="machine-readable output (the means per method)")
    p.set_defaults(run=cmd_evaluate)
