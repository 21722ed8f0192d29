"""``python -m bench``: run the benchmark's sections and write the report (see ``bench/__init__.py``)."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from facerest.errors import FacerestError

from .context import DEFAULT_OFFICIAL_PYTHON, DEFAULT_SHARED, SECTIONS, BenchOptions, Context
from .report import BenchReport, load_average, machine_lines, write_report
from .sections.flops import flops, matmul
from .sections.gfpgan import gfpgan
from .sections.idm import idm
from .sections.memory import memory
from .sections.photos import photos
from .sections.quality import quality
from .sections.training import training

RUNS = {"matmul": matmul, "gfpgan": gfpgan, "photos": photos, "idm": idm, "training": training, "quality": quality,
        "memory": memory}
PATH_OPTIONS = ("out", "plot", "shared", "photos", "detector_weights", "testset", "train_data", "gfpgan", "idm",
                "default_model", "work_dir")


def run_benchmarks(options: BenchOptions, log: Callable[[str], None] | None = None) -> BenchReport:
    """Run the sections named in ``options.sections``, in the order of ``SECTIONS``, and return the report."""
    unknown = set(options.sections) - set(SECTIONS)
    if unknown:
        raise FacerestError(f"unknown bench part(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    started, load_before = time.perf_counter(), load_average()
    with tempfile.TemporaryDirectory(prefix="facerest-bench-") as temporary:
        work = Path(options.work_dir) if options.work_dir else Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        ctx = Context.start(options, log, work)
        if "matmul" not in options.sections and any(s in options.sections for s in ("gfpgan", "idm")):
            matmul(ctx)  # the yardstick of the FLOPs table
        for name in SECTIONS:
            if name in options.sections:
                log(f"== {name}")
                RUNS[name](ctx)
        if ctx.flops_rows:
            matmul(ctx, "end of the run")
            flops(ctx)
    seconds = time.perf_counter() - started
    return BenchReport(machine_lines(ctx, load_before, seconds), ctx.tables, ctx.summary, ctx.plot, seconds)


def build_parser(prog: str = "python -m bench") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Prints one table per part and writes them, with the machine and versions, to --out "
        "(default BENCHMARKS.md) and a quality-against-steps plot beside it. About 15 minutes on 2 CPU cores; "
        "--quick: tiny networks, about a minute, written to BENCHMARKS_quick.md.",
    )
    add = parser.add_argument
    add("--prog", default=prog, help=argparse.SUPPRESS)  # the command's name in the report
    add("--quick", action="store_true", help="tiny networks and few repeats (for tests)")
    add("--out", help="the report to write (default BENCHMARKS.md; with --quick BENCHMARKS_quick.md, so that a smoke "
        "run leaves the full run's report as it is)")
    add("--plot", help="the quality-against-steps plot (default: beside --out, <stem>_quality.png)")
    add("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="PART",
        help=f"parts to run (default all): {', '.join(SECTIONS)}")
    add("--shared", default=str(DEFAULT_SHARED), help="the shared data folder (default %(default)s)")
    add("--photos", help="whole photos (default SHARED/data/whole_imgs)")
    add("--detector-weights", help="folder with detection_mobilenet0.25_Final.pth (default SHARED/weights/facexlib)")
    add("--testset", help="paired test set for the quality part (default runs/testset64, else made)")
    add("--train-data", help="HQ faces for the training part (default SHARED/data/ffhq256/train)")
    add("--gfpgan", help="trained 64-px GFP-GAN (saved pipeline or train_gfpgan.py output) for the quality part")
    add("--idm", help="trained 64-px IDM (saved pipeline or train_idm.py output) for the quality part")
    add("--default-model", help="the shipped default pipeline, timed per face beside the GFP-GAN forward pass "
        "(default models/default when that folder exists; with --quick only when given)")
    add("--official-python", default=DEFAULT_OFFICIAL_PYTHON,
        help="interpreter of the environment with the official gfpgan package ('none' to skip; default %(default)s, "
        "or $FACEREST_OFFICIAL_PYTHON)")
    add("--threads", type=int, help="torch threads (default: torch's default)")
    add("--device", help="torch device (default: cuda if available, else cpu)")
    add("--compile", action="store_true", help="also time torch.compile (minutes to compile on a CPU)")
    add("--quality-faces", type=int, help="test faces scored per row (default 16; 4 with --quick)")
    add("--memory-photos", type=int, help="photos in the bounded-memory run (default 100; 10 with --quick)")
    add("--repeats", type=int, help="timed repeats per measurement (default 3; 2 with --quick)")
    add("--work-dir", help="keep the intermediate files here (default: a temporary folder)")
    return parser


def command_line(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The bench's command line as given (options left at their defaults omitted)."""
    defaults = vars(parser.parse_args([]))
    words = shlex.split(args.prog)
    for name, value in vars(args).items():
        if name == "prog" or value == defaults.get(name):
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = argv[argv.index("--prog") + 1] if "--prog" in argv[:-1] else "python -m bench"
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    paths = {name: (Path(getattr(args, name)) if getattr(args, name) else None) for name in PATH_OPTIONS}
    paths["out"] = paths["out"] or Path("BENCHMARKS_quick.md" if args.quick else "BENCHMARKS.md")
    options = BenchOptions(
        quick=args.quick, sections=args.sections, official_python=args.official_python, threads=args.threads,
        device=args.device, compile=args.compile, quality_faces=args.quality_faces, memory_photos=args.memory_photos,
        repeats=args.repeats, command=command_line(args, parser), **paths,
    )
    try:
        report = run_benchmarks(options)
    except FacerestError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = write_report(report, options.out)
    print(report.markdown())
    print(f"wrote {path}" + (f" and {report.plot}" if report.plot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
