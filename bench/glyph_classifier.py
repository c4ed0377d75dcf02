"""How long to train the fonts report's glyph classifier, chosen on the training fonts alone.

    python bench/glyph_classifier.py [--settings 4:0 4:2 12:0] [--seed 0]

The classifier (`vaekit.fontmetrics`) is the fonts report's measuring instrument: it reads every
reconstruction, sample and attribute edit.  So its settings are chosen by how well it reads real
glyphs of fonts it has not seen, without looking at the report's held-out fonts: the report's
training fonts (the same render and the same split by name as `vaekit report fonts`) are split again
by name, 85 % to train the classifier and 15 % to read.  Each setting EPOCHS:SHIFT (training epochs,
random shift of the training glyphs in pixels) is trained with the report's widths and seed.  Writes
bench/results/glyph_classifier.json and prints a table: character accuracy on the 15 %, font-level
attribute accuracy, CPU-minutes.

Needs the rendered fonts (`make fonts-data`, then any `vaekit report fonts` run has cached them).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vaekit import fontmetrics
from vaekit.reports.fonts import held_out, render_fonts

from common import write

CHANNELS = (32, 64, 128)  # the report's widths


def setting(text: str) -> tuple[int, int]:
    epochs, sep, shift = text.partition(":")
    try:
        if not sep or int(epochs) < 1 or int(shift) < 0:
            raise ValueError
        return int(epochs), int(shift)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected EPOCHS:SHIFT, e.g. 12:0") from None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", nargs="+", type=setting, default=[(4, 0), (4, 2), (12, 0)], metavar="EPOCHS:SHIFT")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    fonts = render_fonts(None, size=64)
    train = fonts.subset(np.nonzero([not held_out(f.name, 0.1) for f in fonts.info])[0])  # the report's split
    val = np.array([held_out(f.name + "/val", 0.15) for f in train.info])  # a second split by name
    fit, read = train.subset(np.nonzero(~val)[0]), train.subset(np.nonzero(val)[0])
    attrs = np.stack([fit.attribute(a) for a in fontmetrics.ATTRIBUTES], 1)
    print(f"{len(fit)} fonts to train on, {len(read)} to read (of the report's {len(train)} training fonts)")

    rows = [["epochs", "shift", "char accuracy", *fontmetrics.ATTRIBUTES, "CPU-min"]]
    results = []
    for epochs, shift in args.settings:
        cpu0 = time.process_time()
        clf = fontmetrics.train_classifier(
            fit.images, attrs, epochs=epochs, channels=CHANNELS, max_shift=shift, seed=args.seed
        )
        minutes = (time.process_time() - cpu0) / 60
        s = fontmetrics.score(clf, read.images)
        attr_acc = {a: float(np.mean((s[a] > 0.5) == read.attribute(a))) for a in fontmetrics.ATTRIBUTES}
        results.append(
            {"epochs": epochs, "shift": shift, "char_accuracy": s["char_accuracy"], **attr_acc, "cpu_minutes": minutes}
        )
        rows.append(
            [
                str(epochs),
                str(shift),
                f"{s['char_accuracy']:.3f}",
                *(f"{v:.2f}" for v in attr_acc.values()),
                f"{minutes:.1f}",
            ]
        )
        print(" ".join(rows[-1]), flush=True)
    write(
        "glyph_classifier",
        {"fonts_trained_on": len(fit), "fonts_read": len(read), "seed": args.seed, "settings": results},
        rows,
    )


if __name__ == "__main__":
    main()
