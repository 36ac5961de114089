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
        if not args.arch:
            raise CLIError("weights convert needs --arch (e.g. --arch resnet50)")
        out = args.out or Path(args.name).with_suffix(".npz")
        print(f"wrote {weights.convert(args.name, out, args.arch)}")
    elif args.action == "info":
        print(json.dumps(weights.info(args.name), indent=2, default=str))


def register(sub):
    p = sub.add_parser("weights", help="list, fetch, convert or inspect weights")
    p.add_argument("action", choices=["list", "fetch", "convert", "info"])
    p.add_argument("name", nargs="?", help="checkpoint name (fetch) or file (convert, info)")
    p.add_argument("--arch", help="architecture of the file to convert")
    p.add_argument("--out", type=Path, help="output .npz (convert)")
    p.set_defaults(run=cmd_weights)
