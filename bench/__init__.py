"""The benchmark of facerest (``python -m bench``, or ``python -m facerest bench`` from a checkout): speed, memory
and quality against cost, side by side with the official GFP-GAN. It ships with the source repository and is not
installed with the library: it imports ``facerest``, never the other way round.

- ``context``: the options and the run's shared state; ``subjects``: the networks, photos and detector timed;
- ``measure``: timers, peak memory, FLOP counts; ``official``: the official side, run in its own environment;
- ``sections/``: one module per section (gfpgan, photos, idm, training, quality, memory, flops);
- ``report``: the report and its plot; ``how_to_read.md``: the fixed notes appended to every report.

The scripts beside them (``before_after.py``, ``degradation_throughput.py``, ``idm_chain_psnr.py``,
``idm_sample_spread.py``, ``official_gfpgan.py``) run on their own: ``python bench/NAME.py --help``.
"""
