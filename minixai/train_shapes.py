"""Train the shapes CNN with minixai alone and write the weights that ship with the package.

    python -m minixai.train_shapes                 # writes weights/shapes.npz (10-15 minutes, 2 cores)
    python -m minixai.train_shapes --quick         # a short run to see that the loss falls
    python -m minixai.train_shapes --evaluate      # held-out accuracy of the shipped weights

Seeded end to end: the training and held-out sets come from minixai.data.shapes with fixed seeds, the
initialisation and the mini-batch order from one numpy Generator. Adam, cross-entropy, parameter
gradients from each layer's own backward (minixai.training).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minixai.data import shapes
from minixai.models.initialisation import initialise
from minixai.models.shapes import shapes_cnn
from minixai.training import Adam, train_step
from minixai.weights import save_npz

TRAIN_SEED, TEST_SEED = 1, 2          # held-out set: shapes.generate(n, seed=TEST_SEED)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "weights" / "shapes.npz"


def accuracy(model, batch, batch_size=250):
    correct = 0
    for i in range(0, len(batch), batch_size):
        logits = model(batch.images[i:i + batch_size])
        correct += int((logits.argmax(axis=1) == batch.labels[i:i + batch_size]).sum())
    return correct / len(batch)


def train(n_train=16000, epochs=8, batch_size=64, lr=2e-3, seed=0, n_test=2000, progress=True):
    """Returns (model, report) with the held-out accuracy and the loss per epoch."""
    rng = np.random.default_rng(seed)
    data = shapes.generate(n_train, seed=TRAIN_SEED)
    test = shapes.generate(n_test, seed=TEST_SEED)
    model = shapes_cnn(len(shapes.CLASS_NAMES), shapes.SPEC)
    initialise(model, seed=seed, linear="uniform")
    optimizer = Adam(model, lr=lr)
    losses, start = [], time.time()
    steps_per_epoch = n_train // batch_size
    for epoch in range(epochs):
        optimizer.lr = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))     # cosine decay per epoch
        order = rng.permutation(n_train)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress)
        epoch_loss = []
        for step in bar:
            idx = order[step * batch_size:(step + 1) * batch_size]
            images = data.images[idx]
            flip = rng.random(len(idx)) < 0.5                      # shapes are mirror-symmetric classes
            images[flip] = images[flip, :, :, ::-1]
            epoch_loss.append(train_step(model, np.ascontiguousarray(images), data.labels[idx], optimizer))
            bar.set_postfix(loss=f"{np.mean(epoch_loss[-50:]):.3f}")
        losses.append(float(np.mean(epoch_loss)))
    model.eval()
    report = {"held_out_accuracy": accuracy(model, test), "n_test": n_test, "test_seed": TEST_SEED,
              "n_train": n_train, "train_seed": TRAIN_SEED, "epochs": epochs, "epoch_loss": losses,
              "seconds": round(time.time() - start, 1)}
    return model, report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="2000 images, 1 epoch: a smoke test")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluate", action="store_true", help="only measure the held-out accuracy of --out")
    args = parser.parse_args(argv)
    if args.evaluate:
        from minixai.models.shapes import shapes as shapes_model
        test = shapes.generate(2000, seed=TEST_SEED)
        print(f"held-out accuracy of {args.out}: {accuracy(shapes_model(weights=args.out), test):.1%} "
              f"(2000 images, seed {TEST_SEED})")
        return
    n_train, epochs = (2000, 1) if args.quick else (16000, args.epochs)
    model, report = train(n_train=n_train, epochs=epochs, seed=args.seed)
    print(json.dumps(report, indent=2))
    meta = {"architecture": "shapes", "class_names": shapes.CLASS_NAMES, "source": "python -m minixai.train_shapes",
            "mean": list(shapes.SPEC.mean), "std": list(shapes.SPEC.std), "size": list(shapes.SPEC.size),
            "training": report}
    save_npz(args.out, model.state_dict(), meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
