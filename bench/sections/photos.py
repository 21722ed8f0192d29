"""Whole photos through ``FaceRestorePipeline.__call__``, stage by stage, next to the official ``GFPGANer.enhance``."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from types import ModuleType

from facerest.devices import synchronize

from ..context import Context
from ..measure import PeakRSS
from ..official import official_side, run_official
from ..subjects import detector, gfpgan_configs, gfpgan_label, gfpgan_model, photo_config, photo_paths

STAGES = ("decode", "detect", "align", "restore", "paste")
COLUMNS = ["Photo", "Size", "Faces (ours / official)", "Decode (ms)", "Detect (ms)", "Align (ms)", "Restore (ms)",
           "Paste back (ms)", "Ours: sum of stages (ms)", "Ours: pipeline() (ms)",
           "Ours: pipeline(), 8 faces per pass (ms)", "Official: enhance() (ms)", "Official / ours",
           "Ours: pipeline(), detection at full size (ms, faces)"]


class StageClock:
    """Times the stages of ``pipeline(path, detector=detector)`` as it runs: the detector's ``detect_turned``, the
    pipeline's ``restore_faces`` and the ``restore_photo`` it calls (align, restore, paste back) are wrapped, while
    the clock is entered, to note when they start and end. Decode is the time before detection starts."""

    def __init__(self, pipeline, detector, device):
        self.pipeline, self.detector, self.device, self.marks = pipeline, detector, device, {}
        self._originals = []  # (owner, name, what was there)

    def __enter__(self) -> "StageClock":
        import facerest.pipeline as pipeline_module

        for owner, name in ((self.detector, "detect_turned"), (pipeline_module, "restore_photo"),
                            (self.pipeline, "restore_faces")):
            self._wrap(owner, name)
        return self

    def __exit__(self, *exc_info) -> None:
        for owner, name, function in self._originals:
            if isinstance(owner, ModuleType):
                setattr(owner, name, function)
            else:
                delattr(owner, name)  # the instance's wrapper goes; its class's method shows again
        self._originals = []

    def _wrap(self, owner, name: str) -> None:
        function = getattr(owner, name)
        self._originals.append((owner, name, function))

        def timed(*args, **kwargs):
            self.marks[f"{name} start"] = self._now()
            result = function(*args, **kwargs)
            self.marks[f"{name} end"] = self._now()
            return result

        setattr(owner, name, timed)

    def _now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def __call__(self, path: Path, **kwargs):
        """(the pipeline's output, seconds per stage, seconds of the whole call) for one photo."""
        self.marks = {}
        started = self._now()
        result = self.pipeline(str(path), detector=self.detector, output_type="np", progress=False, **kwargs)
        total = self._now() - started
        marks = self.marks
        photo_start, photo_end = marks["restore_photo start"], marks["restore_photo end"]
        restore_start, restore_end = marks.get("restore_faces start", photo_start), marks.get("restore_faces end", photo_start)
        stages = {
            "decode": marks["detect_turned start"] - started,
            "detect": marks["detect_turned end"] - marks["detect_turned start"],
            "align": restore_start - photo_start,
            "restore": restore_end - restore_start,
            "paste": photo_end - restore_end,
        }
        return result, stages, total


def _fastest_call(ctx: Context, pipeline, path: Path, repeats: int, **kwargs) -> tuple[float, int]:
    """The fastest of ``repeats`` whole pipeline calls on the photo, and the faces it restored."""
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = pipeline(str(path), output_type="np", progress=False, **kwargs)
        synchronize(ctx.device)
        runs.append(time.perf_counter() - started)
    return min(runs), len(result.restored_faces[0])


def _time_photo(ctx: Context, clock: StageClock, full_size_detector, path: Path, passes: int) -> dict:
    """Our stages and whole calls on one photo: the fastest of ``passes`` staged calls; then with 8 faces per
    forward pass, and with detection on the full-size photo."""
    ctx.log(f"photo {path.name}")
    runs = [clock(path) for _ in range(passes)]
    result = runs[0][0]
    height, width = result.images[0].shape[:2]
    full_size, full_size_faces = _fastest_call(ctx, clock.pipeline, path, ctx.photo_passes, detector=full_size_detector)
    return {
        "path": path, "size": f"{width}x{height}", "faces": len(result.restored_faces[0]),
        "stages": {stage: min(stages[stage] for _, stages, _ in runs) for stage in STAGES},
        "default": min(total for _, _, total in runs),
        "8 faces": _fastest_call(ctx, clock.pipeline, path, ctx.photo_passes, detector=clock.detector, face_batch_size=8)[0],
        "full size": f"{full_size * 1e3:.0f} ({full_size_faces})",
    }


def _official_photos(ctx: Context, official: dict, configs: dict, name: str, photos: list[Path]) -> dict:
    """The official photo timings by file name: the better of its runs before and after ours, so a busy spell of
    the shared machine does not fall on one side only."""
    before = {Path(entry["path"]).name: entry for entry in official.get("photos", [])}
    if "error" in official:
        return before
    again = run_official(ctx, {name: {**configs[name], "time_forward": False}}, photos, name, "official_after")
    after = {Path(entry["path"]).name: entry for entry in again.get("photos", [])}
    for photo, entry in before.items():
        if photo in after:
            entry["enhance"] = min(entry["enhance"], after[photo]["enhance"])
            entry["stages"] = {stage: min(entry["stages"][stage], after[photo]["stages"][stage]) for stage in STAGES}
    return before


def photos(ctx: Context) -> None:
    """Each photo through our pipeline (stages and whole calls) between two official passes over the photos."""
    from facerest.pipeline import FaceRestorePipeline

    table = ctx.table("Whole photos: our pipeline stage by stage, and the official GFPGANer.enhance", COLUMNS)
    paths = photo_paths(ctx)
    if not paths:
        table.notes.append(f"skipped: no photos in {ctx.photos_dir}")
        return
    name, configs = photo_config(ctx), gfpgan_configs(ctx)
    official = official_side(ctx, configs, paths, name)
    pipeline = FaceRestorePipeline(restorer=gfpgan_model(ctx, name, configs[name])).to(ctx.device)
    face_detector = detector(ctx)
    full_size_detector = copy.copy(face_detector)  # the same network on the full-size photo, as the official side
    full_size_detector.max_detection_side = None
    pipeline(str(paths[0]), detector=face_detector, output_type="np", progress=False)  # warm-up, as the official side
    passes = 2 * ctx.photo_passes  # as many as the official side gets, before ours and after
    with StageClock(pipeline, face_detector, ctx.device) as clock, PeakRSS(ctx.device) as memory:
        measured = [_time_photo(ctx, clock, full_size_detector, path, passes) for path in paths]
    theirs = _official_photos(ctx, official, configs, name, paths)
    _fill_tables(ctx, table, measured, theirs)
    table.notes += [
        f"Network: GFP-GAN {gfpgan_label(name, configs[name])}, fp32, on {ctx.device}; detector: {face_detector.name} "
        "on both sides; upscale 1; after one warm-up photo on both sides. Milliseconds per photo.",
        f"Ours: the fastest of {passes} calls of FaceRestorePipeline.__call__ on the file, its stages timed inside "
        f"the same calls; default {pipeline.default_face_batch_size} face(s) per forward pass; the 8-faces and "
        f"full-size columns: the fastest of {ctx.photo_passes}. Official: GFPGANer.enhance after cv2.imread, "
        f"{ctx.photo_passes} pass(es) before ours and as many after, the fastest kept.",
        f"Peak RSS growth over all photos (ours): {memory.growth_mib:.0f} MiB.",
        "Limited by: restore on photos with faces, detection on large ones (see 'How to run and read this').",
    ]
    if "error" in official:
        table.notes.append(f"Official side: {official['error']}.")
    else:
        _photo_summary(ctx, table, measured, theirs)


def _fill_tables(ctx: Context, table, measured: list[dict], theirs: dict) -> None:
    """A row per photo, and the per-stage sums over the photos."""
    totals = {"ours": dict.fromkeys(STAGES, 0.0), "official": {}}
    for photo in measured:
        official = theirs.get(photo["path"].name)
        official_total = official["enhance"] if official else None
        stages = photo["stages"]
        milliseconds = [*(stages[stage] for stage in STAGES), sum(stages.values()), photo["default"], photo["8 faces"],
                        official_total]
        table.add(
            photo["path"].name, photo["size"], f"{photo['faces']} / {official['faces'] if official else '–'}",
            *(None if value is None else value * 1e3 for value in milliseconds),
            official_total / photo["default"] if official else None, photo["full size"],
        )
        for stage in STAGES:
            totals["ours"][stage] += stages[stage]
            if official:
                totals["official"][stage] = totals["official"].get(stage, 0.0) + official["stages"][stage]
    stage_table = ctx.table("Whole photos: seconds per stage, summed over the photos",
                            ["Stage", "Ours (s)", "Official (s)", "Official / ours"])
    for stage in STAGES:
        ours, official = totals["ours"][stage], totals["official"].get(stage)
        stage_table.add(stage, ours, official, official / ours if official and ours else None)


def _photo_summary(ctx: Context, table, measured: list[dict], theirs: dict) -> None:
    """Official over ours, summed over all photos and over those with two or more faces."""
    mismatched = [photo["path"].name for photo in measured
                  if photo["path"].name in theirs and theirs[photo["path"].name]["faces"] != photo["faces"]]
    if mismatched:
        table.notes.append(f"The two sides found different numbers of faces in: {', '.join(mismatched)}.")
    timed = [(photo, theirs[photo["path"].name]["enhance"]) for photo in measured if photo["path"].name in theirs]
    ours = sum(photo["default"] for photo in measured)
    if not ours:
        return
    official = sum(seconds for _, seconds in timed)
    line = (f"Whole photos, all {len(measured)}: official / ours = {official / ours:.2f}x (our default; "
            f"{official / sum(photo['8 faces'] for photo in measured):.2f}x with 8 faces per forward pass)")
    ours_multi = sum(photo["default"] for photo in measured if photo["faces"] >= 2)
    if ours_multi:
        multi = sum(seconds for photo, seconds in timed if photo["faces"] >= 2) / ours_multi
        line += f"; photos with 2+ faces: {multi:.2f}x (target 1.5x: {'met' if multi >= 1.5 else 'not met'})"
    ctx.summary.append(line)
