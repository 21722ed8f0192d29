"""The machine's matrix-multiply rate, and the models' FLOPs over their measured time against it."""

from __future__ import annotations

from ..context import Context
from ..measure import cpu_flags, matmul_rate


def matmul(ctx: Context, when: str = "start of the run") -> None:
    """The best fp32 GEMM rate of this run's threads: the yardstick of the FLOPs table (measured at the start and
    again at the end of the run; the better of the two is used)."""
    size = 1024 if ctx.quick else 2048
    rate = matmul_rate(size, ctx.repeats + 2, ctx.device)
    ctx.matmul_gflops = max(rate, ctx.matmul_gflops or 0.0)
    if ctx.matmul_table is None:
        ctx.matmul_table = ctx.table(
            "Matrix-multiply rate (the machine's practical limit)",
            ["Operation", "When", "Threads", "GFLOP/s (best of repeats)"],
        )
        ctx.matmul_table.notes.append(
            f"Limited by: the CPU's vector units ({cpu_flags()}) and the {ctx.threads} thread(s) allowed; on a shared "
            "machine, by the other jobs' use of the same cores."
        )
    ctx.matmul_table.add(f"fp32 {size}x{size} @ {size}x{size}", when, ctx.threads, rate)


def flops(ctx: Context) -> None:
    """Each timed model's FLOPs per face over its seconds per face, as a share of the matmul rate."""
    table = ctx.table(
        "How close to the machine's limit: FLOPs per face over measured time",
        ["Model", "GFLOP per face", "Seconds per face", "Achieved GFLOP/s", "% of the matmul rate"],
    )
    for name, gflop, seconds in ctx.flops_rows:
        rate = gflop / seconds if seconds else None
        percent = rate / ctx.matmul_gflops * 100 if rate and ctx.matmul_gflops else None
        table.add(name, gflop, seconds, rate, percent)
    table.notes += [
        f"Against the better matmul rate of this run ({ctx.matmul_gflops:.0f} GFLOP/s); times from the tables above "
        "(fp32, batch 1 for GFP-GAN, per face for the IDM step).",
        "Limited by: how compute-bound each model is (see 'How to run and read this').",
    ]
