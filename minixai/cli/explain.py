"""`minixai explain` (one image, chosen methods) and `minixai demo` (a few shapes images, every method)."""
import json
from pathlib import Path

from .common import (DEMO_METHODS, explain, figure, load_image, load_model, methods, model_options, target_class,
                     top_k)


def cmd_explain(args):
    model = load_model(args.model, args.weights)
    x, label = load_image(args.image, model.spec)
    logits = model(x)
    target = target_class(args.target, model.spec, logits)
    maps = explain(model, x, methods(args.method), target, args.seed, progress=not args.json)
    names = model.spec.class_names
    title = f"{label}: explaining '{names[target] if target < len(names) else target}' ({args.model})"
    out = figure(x, maps, model.spec, title, Path(args.out))
    report = {"image": label, "model": args.model, "target": target, "figure": str(out),
              "top5": [{"class": i, "name": n, "probability": p} for i, n, p in top_k(logits, names)]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{label} ({args.model}), top-5 predictions:")
        for i, n, p in top_k(logits, names):
            print(f"  {p:7.2%}  {n} ({i})")
        print(f"explained class {target}; figure written to {out}")


def cmd_demo(args):
    import minixai as mx
    from minixai.data import shapes
    from minixai.train_shapes import TEST_SEED
    model = load_model("shapes", None)
    batch = shapes.generate(args.n, seed=TEST_SEED)
    out_dir = Path(args.out)
    written, rows = [], []
    for i in range(args.n):
        x = batch.images[i:i + 1]
        logits = model(x)
        predicted = int(logits[0].argmax())
        maps = explain(model, x, methods(DEMO_METHODS), predicted, args.seed, progress=False)
        title = (f"shapes:{i}  true: {batch.class_names[batch.labels[i]]}  "
                 f"predicted: {batch.class_names[predicted]} ({top_k(logits, batch.class_names, 1)[0][2]:.0%})")
        written.append(str(figure(x, maps, model.spec, title, out_dir / f"demo_{i}.png")))
        rows.append({"image": f"shapes:{i}", "true": batch.class_names[batch.labels[i]],
                     "predicted": batch.class_names[predicted]})
        if not args.json:
            print(f"shapes:{i}: true {rows[-1]['true']:<8} predicted {rows[-1]['predicted']:<8} -> {written[-1]}")
    if args.json:
        print(json.dumps({"figures": written, "images": rows, "backend": mx.get_backend()}, indent=2))
    else:
        print(f"wrote {len(written)} figures to {out_dir.resolve()}")


def register(sub):
    p = sub.add_parser("explain", help="explain one image: top-5 predictions and a figure of attributions")
    p.add_argument("image", help="an image file, or shapes:N for the N-th held-out shapes image")
    model_options(p)
    p.add_argument("--method", default="saliency,ig,gradcam", help="comma-separated, from: " + DEMO_METHODS)
    p.add_argument("--target", help="class index or name (default: the predicted class)")
    p.add_argument("--out", default="explanation.png", help="where to write the figure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_explain)

    p = sub.add_parser("demo", help="explain a few shapes-world images with every method, offline")
    p.add_argument("--out", default="minixai-demo", help="folder for the figures")
    p.add_argument("-n", type=int, default=3, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_demo)
