"""Save an IDM pipeline whose UNet is the mean of several fine-tunes' UNets (``average_unets``, a "model soup").

    python train/average_unets.py runs/soup models/default runs/idm256l2b
    # the first model's scheduler and settings are kept; then score it: python bench/default_checks.py --model runs/soup
"""

import argparse

from facerest import FaceRestorePipeline
from facerest.models.idm import average_unets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="where to save the averaged pipeline")
    parser.add_argument("models", nargs="+", help="saved IDM pipelines fine-tuned from one model (two or more)")
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("give two or more models to average")

    pipelines = [FaceRestorePipeline.from_pretrained(model) for model in args.models]
    for model, pipeline in zip(args.models, pipelines):
        if pipeline.unet is None:
            raise SystemExit(f"{model} is a {pipeline.kind!r} pipeline: it has no IDM unet")
    try:
        averaged = average_unets([pipeline.unet for pipeline in pipelines])
    except ValueError as error:
        raise SystemExit(f"cannot average {', '.join(args.models)}: {error}")
    pipelines[0].register_modules(unet=averaged)
    pipelines[0].save_pretrained(args.output_dir)
    print(f"saved {args.output_dir}: the mean of {len(args.models)} UNets ({', '.join(args.models)})")


if __name__ == "__main__":
    main()
