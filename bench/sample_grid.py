"""A model card's sample grid: degraded | restored | original, one face per row, from a paired test set.

    python -m facerest restore runs/testset256/lq -o outputs/testset256 --model models/default --aligned
    python bench/sample_grid.py runs/testset256 outputs/testset256 --out models/default/sample_grid.png

Takes the first `--faces` faces of the test set (by name) and their restorations (`OUTPUT/<name>.png`, as `python -m
facerest restore` writes them), each at the test set's size, in the training scripts' validation grid
(`facerest.training.utils.save_image_grid`).
"""

import argparse
from pathlib import Path

import torch

from facerest.images import image_to_tensor, list_images, load_image
from facerest.training.utils import save_image_grid


def grid_columns(testset: Path, restored: Path, faces: int) -> list[torch.Tensor]:
    """The degraded, restored and original faces, a (faces, 3, H, W) tensor each."""
    degraded = list_images(testset / "lq")[:faces]
    names = [path.relative_to(testset / "lq").with_suffix(".png") for path in degraded]
    columns = (degraded, [restored / name for name in names], [testset / "hq" / name for name in names])
    return [torch.stack([image_to_tensor(load_image(path)) for path in paths]) for paths in columns]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("testset", type=Path, help="a paired test set (make-testset's lq/ and hq/)")
    parser.add_argument("restored", type=Path, help="the restored lq/ faces, as `restore --aligned` writes them")
    parser.add_argument("--faces", type=int, default=4, help="rows of the grid")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    save_image_grid(grid_columns(args.testset, args.restored, args.faces), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
