"""The commands that optimise an image: `minixai counterfactual` (seed 003) and `minixai filters` (seed 004)."""
import json

import numpy as np

from .common import CLIError, load_image, load_model, model_options, output_path, target_class


def cmd_counterfactual(args):
    import minixai as mx
    from minixai import viz
    from minixai.counterfactual import compare_figure
    if args.method not in mx.METHODS:
        raise CLIError(f"unknown method {args.method!r}; valid: {', '.join(mx.METHODS)}")
    model = load_model(args.model, args.weights)
    x, label = load_image(args.image, model.spec)
    target = target_class(args.target, model.spec, model(x))
    result = mx.counterfactual(model, x, target, lr=args.lr, steps=args.steps, threshold=args.threshold,
                               progress=not args.json)
    out = output_path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viz.save(compare_figure(model, result, method=args.method), out)
    names = model.spec.class_names
    report = {"image": label, "model": args.model, "target": target, "target_name": names[target],
              "success": result.success, "steps": result.steps,
              "probability": float(result.probabilities[target]), "l1_distance": result.distance["l1"],
              "l2_distance": result.distance["l2"], "figure": str(out)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{label} -> {names[target]} ({args.model}, lr {args.lr:g}): "
          f"{'success' if result.success else 'NOT reached'} after {result.steps} steps")
    print(f"  p({names[target]}) = {report['probability']:.2%}  (threshold {args.threshold:g})")
    print(f"  L1 distance: mean |change| = {result.distance['l1']:.4f} of the pixel range "
          f"(= {255 * result.distance['l1']:.2f} / 255)")
    print(f"figure written to {out}")


def cmd_filters(args):
    import minixai as mx
    from minixai import viz
    if args.count <= 0:
        raise CLIError(f"--count must be a positive integer, got {args.count}")
    model = load_model(args.model, args.weights)
    results = mx.maximize_filters(model, args.layer, range(args.count), steps=args.steps, lr=args.lr,
                                  seed=args.seed, size=args.size, batch_size=args.batch_size,
                                  progress=not args.json)
    out = output_path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{args.model} {args.layer}: filters 0-{args.count - 1}, {args.steps} steps of gradient ascent"
    viz.save(viz.filter_grid(results, title=title), out)
    start = np.array([r.history[0] for r in results])
    final = np.array([r.history[-1] for r in results])
    if args.json:
        print(json.dumps({"model": args.model, "layer": args.layer, "steps": args.steps, "figure": str(out),
                          "filters": [{"filter": r.filter, "start": float(r.history[0]),
                                       "final": float(r.history[-1])} for r in results]}, indent=2))
        return
    print(f"{args.count} filters of {args.layer} ({args.model}), {args.steps} steps: mean activation "
          f"(median over filters) {np.median(start):.3g} -> {np.median(final):.3g}; "
          f"{int((final > start).sum())}/{args.count} filters raised")
    print(f"grid written to {out}")


def register(sub):
    p = sub.add_parser("counterfactual", help="change an image until the model predicts another class")
    p.add_argument("image", help="an image file, or shapes:N for the N-th held-out shapes image")
    model_options(p)
    p.add_argument("--target", required=True, help="the class to reach: index or name")
    p.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate (seed 003: 0.01 vs 0.1)")
    p.add_argument("--steps", type=int, default=500, help="at most this many steps")
    p.add_argument("--threshold", type=float, default=0.9, help="stop when p(target) reaches this")
    p.add_argument("--method", default="saliency", help="attribution method of the figure's maps")
    p.add_argument("--out", default="counterfactual.png", help="where to write the comparison figure")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_counterfactual)

    p = sub.add_parser("filters", help="feature visualisation: the input each filter of a layer likes most")
    model_options(p)
    p.add_argument("--layer", required=True, help="layer name, e.g. features.6 (shapes) or layer3 (resnet)")
    p.add_argument("--count", type=int, default=64, help="visualise filters 0..count-1")
    p.add_argument("--steps", type=int, default=30, help="gradient-ascent steps")
    p.add_argument("--lr", type=float, default=10.0, help="step length (L2 norm of each step)")
    p.add_argument("--size", type=int, help="input size in pixels (default: the model's)")
    p.add_argument("--batch-size", type=int, help="filters per pass (default: all at once)")
    p.add_argument("--seed", type=int, default=0, help="seed of the start noise")
    p.add_argument("--out", default="filters.png", help="where to write the grid")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_filters)
