"""Draw docs/width_overlay.png, the README's picture of ``crackkit predict --geometry``.

A synthetic road photo (crackkit's own generator, so no data set's license is involved) predicted
with the run's model as ``crackkit predict`` does it (whole or tiled by its default rule); the
picture is the
``<stem>_width.png`` that ``crackkit predict --geometry --mm-per-px X`` writes: the photo dimmed,
each crack's skeleton coloured by its local width, and a colour bar. The geometry table is
printed.

    .venv/bin/python docs/width_overlay.py runs/<run>      # e.g. the run of `make report`

The README's picture: the run of ``make report`` (synthetic, 96x160), defaults (192x320, seed 1,
1 mm per pixel).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from crackkit.apply import predict_folder
from crackkit.data.synthetic import generate_sample

OUT = Path(__file__).resolve().parent / "width_overlay.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a trained run folder")
    parser.add_argument("--size", nargs=2, type=int, default=(192, 320), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mm-per-px", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    image, _ = generate_sample(np.random.default_rng(args.seed), *args.size, positive=True)
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        Image.fromarray(image).save(photos / "road.png")
        report = predict_folder(
            photos, args.run, out_dir=Path(tmp) / "out", mm_per_px=args.mm_per_px, progress=False
        )
        shutil.copyfile(report.out_dir / "road_width.png", args.out)
        for row in report.geometry_rows():
            print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
