"""`minixai weights list | fetch NAME | convert FILE.pth --arch NAME | info FILE`."""
import json
from pathlib import Path

from .common import CLIError


def cmd_weights(args):
    from minixai import weights
    if args.action == "list":
        for ckpt in weights.list_known():
            print(f"{ckpt.name:<10} {ckpt.filename:<28} {ckpt.url}")
        return
    if args.action == "fetch":
        print(f"stored {weights.fetch(args.name)}")
    elif args.action == "convert":
        print(f"wrote {convert(args.name, args.arch, args.out)}")
    elif args.action == "info":
        print(json.dumps(weights.info(args.name), indent=2, default=str))


def convert(source, arch, out):
    """Convert `source` for architecture `arch` into `out` (default: next to it, .npz); returns the path
    written. The file's keys and shapes are checked against the architecture before anything is written."""
    from minixai import models, weights
    from minixai.weights.limits import open_regular
    valid = ", ".join(models.ARCHITECTURES)
    if not arch:
        raise CLIError(f"weights convert needs --arch NAME; valid: {valid}")
    if arch not in models.ARCHITECTURES:
        raise CLIError(f"unknown architecture {arch!r}; valid: {valid}")
    out = Path(out) if out else Path(source).with_suffix(".npz")
    if not out.suffix:
        out = out.with_suffix(".npz")
    if out.suffix != ".npz":
        raise CLIError(f"--out {out}: the converted weights are an .npz file; give a name ending in .npz")
    open_regular(source).close()            # refuse a FIFO or device before building the model
    shapes = {key: array.shape for key, array in models.ARCHITECTURES[arch](weights=None).state_dict().items()}
    return weights.convert(source, out, arch, expected_shapes=shapes)


def register(sub):
    p = sub.add_parser("weights", help="list, fetch, convert or inspect weights")
    p.add_argument("action", choices=["list", "fetch", "convert", "info"])
    p.add_argument("name", nargs="?", help="checkpoint name (fetch) or file (convert, info)")
    p.add_argument("--arch", help="architecture of the file to convert (its keys and shapes are checked)")
    p.add_argument("--out", type=Path, help="output .npz (convert)")
    p.set_defaults(run=cmd_weights)
