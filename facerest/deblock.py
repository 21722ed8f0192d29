"""JPEG blocks of a photo saved small and enlarged: the blocks' size, and a deblocked copy for the model to restore.

A JPEG codes its image in blocks of 8 x 8 pixels, and at a low quality their edges show as steps on a grid. A photo
saved so and then enlarged s times carries that grid at 8 s pixels, each step smoothed over about s pixels. The models
undo blur well but read such steps as detail, and sharpen them into strokes (docs/what-the-default-undoes.md, "Faces
of photos from outside the project"), so the pipeline first blurs the region of each face of such a photo by a Gaussian
of `SIGMA_PER_ENLARGEMENT` times s pixels: the grid goes, and the model is given a blurred face, what it undoes best.
A grid at the photo's own pixels (a JPEG not enlarged, 8-px blocks) is left to the model, which changes such a face
little, and to the pipeline's cleaning of the finest octave (`facerest.denoise.fine_noise`).

The grid is looked for in the whole photo, whose period it is, since a face's region holds too few blocks to tell it
from the face's own edges. Each column's absolute difference from the next is taken at its median over the rows (a
grid's steps stand in every row, a face's edges in few; `MEDIAN_LINES` of them at most), held to at most
`STEP_CAP_PER_MEDIAN` times that profile's median (a frame's, border's or flat background's straight edge is one step
that stands in every row too, many times a grid's, which would otherwise fold into one bin at many periods), and folded
at each period from `SHORTEST_PERIOD` to `MAX_BLOCK_PERIOD` (and to at most the photo's shorter side over
`MIN_BLOCKS`): its mean in `FOLD_BINS` bins of the phase. A period scores the highest mean of two adjacent bins over
the highest mean of two that lie at least `FOLD_GAP_BINS` bins away, so that a multiple of the grid's period, which
folds its steps into several bins, scores about 1; the same is done for the rows, and the lower of the two scores is
the period's. The grid is the best-scoring period, where it scores at least `BLOCK_SCORE`, or the largest multiple of
it that scores nearly as well (`MULTIPLE_SCORE_SHARE`); it is deblocked from `MIN_BLOCK_PERIOD` on. The search starts
below a JPEG's own block so that a grid at the photo's own pixels is found as such (8 px, left as it is): searched
from `MIN_BLOCK_PERIOD` only, such a grid's multiple of 24 px scored up to 1.46 (JPEGs of quality 20). An image
enlarged by repeating its pixels is not searched (`PIXEL_REPEATS`).
"""

from __future__ import annotations

import cv2
import numpy as np

from .images import LUMA_WEIGHTS

# Blocks of a JPEG, in its own pixels.
JPEG_BLOCK = 8
# Grids deblocked, in the photo's pixels: from a JPEG enlarged 1.5 times to one enlarged 8 times (make-testset's
# recipe shrinks a face up to 8 times). Periods are searched from SHORTEST_PERIOD, in steps of PERIOD_STEP, which
# keeps a grid of MIN_BLOCKS blocks and more within a bin's width across the photo.
MIN_BLOCK_PERIOD = 1.5 * JPEG_BLOCK
MAX_BLOCK_PERIOD = 8 * JPEG_BLOCK
SHORTEST_PERIOD = JPEG_BLOCK - 0.5
PERIOD_STEP = 0.1
# A period is searched only where the photo's shorter side holds this many of it: with fewer, a face's edges fold
# into one bin by chance as often as a grid does (with 12, photos of 230 px shrunk 4 and 8 times without JPEG showed
# grids of 15-19 px, 3 of 48).
MIN_BLOCKS = 16
# The median step of a column is taken over at most about this many rows spread over the photo (and a row's over as many
# columns): all of a 4000 x 2770 photo's took 2.7 s.
MEDIAN_LINES = 512
FOLD_BINS = 16
FOLD_GAP_BINS = 4
# The score above which a period is taken for a JPEG grid. On the clean faces of ffhq256/test, whole_imgs, realworld_lq
# and cropped_lq, the best-scoring period of MIN_BLOCK_PERIOD or more scored at most 1.20; on the degraded faces of the
# 256- and 512-px test sets (`make-testset`, JPEG of quality 60-100 on the face shrunk 0.8-8 times), each of the 5
# scoring 1.25 or more had its grid at the period the recipe gave it (within 0.2 px; 9 of 9 searched to a twelfth of
# the side); JPEGs of quality 30-35 shrunk 2, 3 and 4 times and enlarged back scored 1.26-1.91.
BLOCK_SCORE = 1.25
# A grid's period folded at a half or a third scores high too (its blocks' middles step a little at low qualities: a
# grid of 24 px scored 1.38 at 24 and 1.49 at 12); a multiple of the best-scoring period is taken for the grid where it
# scores at least this share of it. A best-scoring period under MIN_BLOCK_PERIOD is a grid at the photo's own pixels,
# and its multiples are not taken (JPEGs at the photo's own pixels scored 0.36-0.76 of their 8 px at 24 px).
MULTIPLE_SCORE_SHARE = 0.75
# The Gaussian's standard deviation per time the JPEG was enlarged (its grid's period over JPEG_BLOCK). Through the
# default model, on the 9 faces of four photos from outside the project shrunk 2, 3 and 4 times, saved as JPEG of
# quality 30-35 and enlarged back, blurred whole by 0.7-2.5 px first, 0.75 did best at 2x, 0.83 at 3x and 0.63 (the
# most tried) at 4x; 0.5 at 3x and quality 70 (docs/experiments.md, "Deblocking enlarged JPEGs").
SIGMA_PER_ENLARGEMENT = 0.7
# The highest a column's (or row's) step counts, in medians of the photo's steps. Uncapped, 30 of 50 photos with a
# plain border or set on a flat background (whole_imgs given a border of 25-40 px, a black band above and below, or set
# on gray, or shrunk to 600 px and given an off-white border of 30) showed a grid, and 21 of 24 enlarged JPEGs so
# bordered a wrong one; capped at 3, one (codeformer_01.jpg, a JPEG itself, enlarged 2.4 times: its grid, 19.4 px),
# every enlarged JPEG its own grid, and the five grids of the 512-px test set as before (docs/experiments.md,
# "Borders taken for JPEG grids").
STEP_CAP_PER_MEDIAN = 3.0
# The median step below which the cap is taken as this many grey levels (a photo mostly flat).
SMALLEST_MEDIAN_STEP = 0.1
# An image enlarged by repeating its pixels (nearest neighbour, 2 to 4 times: a pixelated screenshot or game capture)
# steps only between its cells, and that comb folds into a false grid at the search's periods by aliasing (2x showed
# one of 30 px, 4x one of 28): an image whose steps at one place in every 2, 3 or 4 average this many times those at
# the others is not searched.
PIXEL_REPEATS = (2, 3, 4)
REPEATED_PIXEL_STEP_RATIO = 3.0


def enlarged_jpeg_period(image: np.ndarray) -> float | None:
    """The period in pixels of the grid of JPEG blocks an RGB uint8 image shows when it was saved as a JPEG 1.5 to 8
    times smaller and enlarged (see the module); None when it shows none, a grid at its own pixels, or is too small to
    tell."""
    height, width = image.shape[:2]
    longest = min(MAX_BLOCK_PERIOD, min(height, width) / MIN_BLOCKS)
    if longest < MIN_BLOCK_PERIOD:
        return None
    periods = np.round(np.arange(SHORTEST_PERIOD, longest + PERIOD_STEP / 2, PERIOD_STEP), 1)  # 12.0, not 11.999...
    some_rows = image[:: max(1, height // MEDIAN_LINES)].astype(np.float32) @ LUMA_WEIGHTS
    some_columns = image[:, :: max(1, width // MEDIAN_LINES)].astype(np.float32) @ LUMA_WEIGHTS
    column_steps = _capped(np.median(np.abs(np.diff(some_rows, axis=1)), axis=0))
    row_steps = _capped(np.median(np.abs(np.diff(some_columns, axis=0)), axis=1))
    if _repeats_pixels(column_steps) or _repeats_pixels(row_steps):
        return None
    scores = np.minimum(_fold_scores(column_steps, periods), _fold_scores(row_steps, periods))
    best = int(np.argmax(scores))
    if scores[best] < BLOCK_SCORE:
        return None
    period = float(periods[best])
    if period < MIN_BLOCK_PERIOD:  # a grid at the photo's own pixels, whose multiples score high too
        return None
    for times in (4, 3, 2):  # the grid's own period, where the best-scoring one is a fraction of it
        near = np.abs(periods - times * period) <= times * PERIOD_STEP
        if near.any() and scores[near].max() >= max(BLOCK_SCORE, MULTIPLE_SCORE_SHARE * scores[best]):
            return float(periods[near][np.argmax(scores[near])])
    return period


def deblocked(image: np.ndarray, period: float) -> np.ndarray:
    """The image (RGB uint8) blurred so that a grid of JPEG blocks of `period` pixels goes (see the module)."""
    sigma = SIGMA_PER_ENLARGEMENT * period / JPEG_BLOCK
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _capped(steps: np.ndarray) -> np.ndarray:
    """`steps` held to at most `STEP_CAP_PER_MEDIAN` times their median (see the module)."""
    return np.minimum(steps, STEP_CAP_PER_MEDIAN * max(float(np.median(steps)), SMALLEST_MEDIAN_STEP))


def _repeats_pixels(steps: np.ndarray) -> bool:
    """Whether `steps` are those of an image enlarged by repeating its pixels (see `PIXEL_REPEATS`)."""
    for times in PIXEL_REPEATS:
        by_place = steps[: len(steps) // times * times].reshape(-1, times).mean(axis=0)
        highest = int(np.argmax(by_place))
        others = np.delete(by_place, highest).mean()
        if by_place[highest] > REPEATED_PIXEL_STEP_RATIO * max(others, 1e-6):
            return True
    return False


def _fold_scores(steps: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """For each period, how far one phase of `steps` (the step between pixels i and i + 1 at i) stands above the
    others when folded at it (see the module)."""
    position = np.arange(len(steps)) + 1.0  # where the step between pixels i and i + 1 lies
    bins = np.floor((position[None, :] % periods[:, None]) / periods[:, None] * FOLD_BINS).astype(np.int32) % FOLD_BINS
    flat = (bins + FOLD_BINS * np.arange(len(periods))[:, None]).ravel()
    size = FOLD_BINS * len(periods)
    sums = np.bincount(flat, np.broadcast_to(steps, bins.shape).ravel(), size).reshape(-1, FOLD_BINS)
    counts = np.bincount(flat, None, size).reshape(-1, FOLD_BINS)
    means = sums / np.maximum(counts, 1)
    pairs = (means + np.roll(means, -1, axis=1)) / 2
    peak = np.argmax(pairs, axis=1)
    distance = np.abs(np.arange(FOLD_BINS)[None, :] - peak[:, None])
    far = np.minimum(distance, FOLD_BINS - distance) >= FOLD_GAP_BINS
    return pairs.max(axis=1) / np.maximum(np.where(far, pairs, 0.0).max(axis=1), 1e-3)
