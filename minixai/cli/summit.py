"""`minixai summit`: the SUMMIT attribution graph of the shapes model, as an HTML page and a drawing."""
import json
from pathlib import Path

from .common import CLIError, held_out_shapes, load_model


def cmd_summit(args):
    import minixai as mx
    from minixai import viz
    batch = held_out_shapes(args.model, args.images, "summit runs on the shapes world's images",
                            "call mx.summit(model, images, layers) from Python")
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise CLIError(f"--out must be an .html file (the drawing goes next to it as .png), got {out}")
    model = load_model("shapes", None)
    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    graph = mx.summit(model, batch.images, layers, clusters=args.clusters, steps=args.steps, seed=args.seed,
                      progress=not args.json)
    graph.to_html(out, images=batch.pixels)
    png = viz.save(graph.plot(), out.with_suffix(".png"))
    gaps = [abs(n.delta) for n in graph.nodes if n.delta is not None]
    strongest = graph.prune(top_k=5).edges
    if args.json:
        print(json.dumps({"html": str(out), "png": str(png), "max_completeness_gap": max(gaps, default=0.0),
                          "graph": json.loads(graph.to_json())}, indent=2))
        return
    print(f"SUMMIT graph of {args.images} held-out shapes images: {len(graph.nodes)} nodes in "
          f"{len(layers)} layers, {len(graph.edges)} edges (largest completeness gap {max(gaps, default=0.0):.2g})")
    for e in sorted(strongest, key=lambda e: -abs(e.weight)):
        print(f"  {e.source:>16} -> {e.target:<16} w = {e.weight:+.4g}")
    print(f"wrote {out} and {png}")


def register(sub):
    p = sub.add_parser("summit", help="SUMMIT attribution graph of the shapes model: HTML page and PNG drawing")
    p.add_argument("--model", default="shapes", help="shapes (the graph is computed on shapes-world images)")
    p.add_argument("--layers", default="features.4,features.7,features.10", help="comma-separated, forward order")
    p.add_argument("--clusters", type=int, default=8, help="nodes per layer")
    p.add_argument("--steps", type=int, default=16, help="integration steps of IG")
    p.add_argument("--images", type=int, default=32, help="number of held-out shapes images")
    p.add_argument("--out", default="summit.html", help="the HTML page; the drawing is written next to it (.png)")
    p.add_argument("--seed", type=int, default=0, help="k-means++ seed")
    p.add_argument("--json", action="store_true", help="machine-readable output (with the whole graph)")
    p.set_defaults(run=cmd_summit)
