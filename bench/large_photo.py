"""Time and peak memory of restoring one large photo: as the app restores it (`facerest.demo.restore`, with the
server's limits) or as the CLI does (the pipeline, with the library's limits).

    python bench/large_photo.py PHOTO --model models/default --detector-weights ../shared/weights/facexlib
    python bench/large_photo.py ../shared/data/whole_imgs/gfpgan_Blake_Lively.jpg --resize 8500x5634 ...  # 48 MP
    python bench/large_photo.py ... --resize 8500x5634 --pipeline --upscale 2  # as `restore --upscale 2` would

`--resize WxH` first enlarges the photo (bicubic, saved as a JPEG of quality 92), to stand for a phone's photo.
Prints the seconds (the app: restoration and result files; the pipeline: restoration), the result's size, the
warnings a visitor would see, and the process's peak resident memory. Run one photo per process: the peak is the
process's, not the request's.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import PIL.Image

from facerest import FaceRestorePipeline, demo
from facerest.face_detection import FaceDetector


def resized_copy(photo: str, size: str, folder: Path) -> Path:
    """The photo enlarged to `size` ("WxH"), as a JPEG in `folder`."""
    width, height = (int(side) for side in size.lower().split("x"))
    path = folder / f"{Path(photo).stem}_{width}x{height}.jpg"
    with PIL.Image.open(photo) as image:
        image.convert("RGB").resize((width, height), PIL.Image.BICUBIC).save(path, quality=92)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--detector-weights", default=None)
    parser.add_argument("--upscale", type=int, default=2, help="the app's default, 2")
    parser.add_argument("--resize", default=None, metavar="WxH", help="enlarge the photo to this size first")
    parser.add_argument("--pipeline", action="store_true", help="restore with the pipeline, as the CLI does")
    args = parser.parse_args()

    detector = FaceDetector("auto", weights_dir=args.detector_weights)
    with tempfile.TemporaryDirectory() as output_dir:
        photo = args.photo if args.resize is None else resized_copy(args.photo, args.resize, Path(output_dir))
        if args.pipeline:
            pipeline = FaceRestorePipeline.from_pretrained(args.model)
            started = time.perf_counter()
            output = pipeline(photo, upscale=args.upscale, detector=detector, progress=False)
            image, faces, warnings = output.images[0], output.restored_faces[0], output.messages[0]
        else:
            registry = demo.load_models([args.model], offer_official=False)
            started = time.perf_counter()
            result = demo.restore(registry, detector, photo, registry.default, upscale=args.upscale, output_dir=output_dir)
            image, faces, warnings = result.image, result.faces, result.warnings
        seconds = time.perf_counter() - started
    width, height = image.size
    print(f"{args.photo}: {len(faces)} faces, result {width}x{height}, {seconds:.1f} s")
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
