"""A model card's sample grid: degraded | restored | original, one face per row, from a paired test set.

    python -m facerest restore runs/testset256/lq -o outputs/testset256 --model models/default --aligned
    python bench/sample_grid.py runs/testset256 outputs/testset256 --out models/default/sample_grid.png

Takes the first `--faces` faces of the test set (by name) and their restorations (`OUTPUT/<name>.png`, as `python -m
facerest restore` writes them), each at the test set's size, in a grid with 2-px white borders (torchvision's
`make_grid`).
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid

from facerest.images import list_images, load_image, save_image


def sample_grid(testset: Path, restored: Path, faces: int) -> np.ndarray:
    tiles = []
    for path in list_images(testset / "lq")[:faces]:
        name = path.relative_to(testset / "lq").with_suffix(".png")
        for image_path in (path, restored / name, testset / "hq" / name):
            tiles.append(torch.from_numpy(load_image(image_path)).permute(2, 0, 1))
    return make_grid(torch.stack(tiles), nrow=3, padding=2, pad_value=255).permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("testset", type=Path, help="a paired test set (make-testset's lq/ and hq/)")
    parser.add_argument("restored", type=Path, help="the restored lq/ faces, as `restore --aligned` writes them")
    parser.add_argument("--faces", type=int, default=4, help="rows of the grid")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    save_image(sample_grid(args.testset, args.restored, args.faces), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
