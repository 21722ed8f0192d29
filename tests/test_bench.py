"""``python -m facerest bench --quick`` (the repository's ``bench`` package): the report's structure (never its
timings: speed is measured by the bench, not by tests). One quick run, without the official environment (its rows
must then say "not installed")."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import build_parser
from bench.__main__ import main as bench_main
from bench.context import NOT_INSTALLED, SECTIONS
from bench.measure import has_bf16_instructions
from facerest.cli import main
from conftest import REPO_ROOT, shared_path


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """One quick run, in this process (``python -m facerest bench`` runs the same ``main`` in a subprocess)."""
    shared_path("data", "whole_imgs")
    shared_path("data", "ffhq256", "test")
    from tiny_pipelines import tiny_pipeline

    folder = tmp_path_factory.mktemp("bench")
    tiny_pipeline("idm").save_pretrained(folder / "default")  # timed as the shipped default would be
    out = folder / "BENCHMARKS.md"
    status = bench_main([
        "--prog", "python -m facerest bench", "--quick", "--threads", "1", "--out", str(out),
        "--official-python", str(folder / "no-such-python"), "--memory-photos", "4", "--work-dir", str(folder / "work"),
        "--default-model", str(folder / "default"),
    ])  # fmt: skip
    assert status == 0
    return out, out.read_text()


def test_facerest_bench_runs_the_repository_bench_from_a_checkout_only(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(REPO_ROOT)
    assert main(["bench", "--help"]) == 0  # runs python -m bench --help
    assert "usage: python -m facerest bench [-h]" in capfd.readouterr().out
    monkeypatch.chdir(tmp_path)  # not a checkout: no bench package here
    assert main(["bench", "--quick"]) == 2
    assert "error: the benchmark ships with the source repository" in capfd.readouterr().err
    assert build_parser().parse_args([]).sections == list(SECTIONS)


def test_a_quick_run_leaves_the_full_report_as_it_is(tmp_path, monkeypatch):
    """Without --out, --quick writes BENCHMARKS_quick.md: a smoke run does not replace the full run's BENCHMARKS.md."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BENCHMARKS.md").write_text("the full run")
    assert bench_main(["--quick", "--device", "cuda:99"]) == 2  # fails before measuring: nothing written
    assert bench_main(["--quick", "--sections", "matmul", "--threads", "1"]) == 0
    assert (tmp_path / "BENCHMARKS.md").read_text() == "the full run"
    assert "- Command: `python -m bench --quick --sections matmul --threads 1`" in (tmp_path / "BENCHMARKS_quick.md").read_text()


def test_the_memory_part_counts_only_its_own_run_in_a_work_dir_used_before(tmp_path):
    """The README's bench command names one --work-dir run after run: the earlier run's results there were counted
    as this run's, so no sample came before them and the table was left without rows."""
    shared_path("data", "whole_imgs")
    arguments = ["--quick", "--sections", "memory", "--threads", "1", "--memory-photos", "2", "--work-dir",
                 str(tmp_path / "work")]  # fmt: skip
    for run in ("first", "second"):
        assert bench_main([*arguments, "--out", str(tmp_path / f"{run}.md")]) == 0
        tables = _tables((tmp_path / f"{run}.md").read_text())
        _, *rows = tables["Bounded memory: python -m facerest restore over a folder"]
        assert [row[0] for row in rows] == ["1", "2"], run


def test_a_device_this_machine_lacks_is_one_error_line(tmp_path, capsys):
    assert bench_main(["--quick", "--device", "cuda:99", "--out", str(tmp_path / "BENCHMARKS.md")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: device 'cuda:99' is not available")
    assert not (tmp_path / "BENCHMARKS.md").exists()


def test_report_is_written_with_the_machine_and_command(quick_report):
    out, text = quick_report
    assert text.startswith("# Benchmarks")
    assert "- Command: `python -m facerest bench --quick" in text
    assert "- Machine: " in text and "torch " in text and "diffusers " in text
    assert "## How to run and read this" in text
    assert (out.parent / "BENCHMARKS_quality.png").is_file()
    assert "![quality against sampling steps](BENCHMARKS_quality.png)" in text


def _tables(text: str) -> dict[str, list[list[str]]]:
    """Section title -> rows (header first) of its Markdown table."""
    tables = {}
    for block in text.split("\n## ")[1:]:
        title, _, body = block.partition("\n")
        rows = [line.strip("|").split(" | ") for line in body.splitlines() if line.startswith("| ")]
        tables[title.strip()] = [[cell.strip() for cell in row] for row in rows]
    return tables


def test_every_part_has_its_table(quick_report):
    _, text = quick_report
    tables = _tables(text)
    expected = {
        "Matrix-multiply rate": 1,
        "GFP-GAN forward pass": 4,  # fp32, batch 4, bf16, official
        "Restoring 4 faces of one photo": 3,  # one after the other, one pass, side by side on the CPU threads
        "Whole photos: our pipeline stage by stage": 3,
        "Whole photos: seconds per stage": 5,
        "IDM sampling": 1,
        "Hybrid": 5,
        "Training throughput": 4,
        "Quality against sampling steps": 9,
        "Bounded memory": 3,
        "How close to the machine's limit": 2,
    }
    for prefix, row_count in expected.items():
        title = next((title for title in tables if title.startswith(prefix)), None)
        assert title is not None, f"no table {prefix!r} in {list(tables)}"
        header, *rows = tables[title]
        assert len(rows) >= row_count, (title, rows)
        assert all(len(row) == len(header) for row in rows), title


def test_the_default_model_is_timed_on_one_face_in_fp32_and_bf16_and_on_four_per_pass_and_one_by_one(quick_report):
    _, text = quick_report
    forward = next(rows for title, rows in _tables(text).items() if title.startswith("GFP-GAN forward"))
    default_rows = [row for row in forward if row[0].startswith("shipped default (") and ": idm, " in row[0]]
    one_face = [("facerest pipeline, aligned 512-px face", "fp32", "1")]
    if has_bf16_instructions():
        one_face.append(("facerest pipeline, aligned 512-px face", "bf16 weights (--dtype bf16)", "1"))
    else:
        assert "The shipped default in bf16: not timed, this CPU lacks bf16 instructions (emulated)." in text
    assert [(row[1], row[2], row[3]) for row in default_rows] == one_face + [
        ("facerest pipeline, 4 aligned 512-px faces in one call (default)", "fp32", "1"),  # on the CPU: one face per pass
        ("facerest pipeline, 4 aligned 512-px faces in one call", "fp32", "4"),
    ]
    assert all(float(row[4]) > 0 for row in default_rows)


def test_the_default_model_is_timed_in_fp32_alone_where_the_cpu_would_emulate_bf16(tmp_path, monkeypatch):
    from bench.sections import gfpgan as gfpgan_section
    from tiny_pipelines import tiny_pipeline

    tiny_pipeline("idm").save_pretrained(tmp_path / "default")
    monkeypatch.setattr(gfpgan_section, "has_bf16_instructions", lambda: False)
    out = tmp_path / "BENCHMARKS.md"
    status = bench_main([
        "--quick", "--sections", "gfpgan", "--threads", "1", "--out", str(out), "--default-model", str(tmp_path / "default"),
        "--official-python", str(tmp_path / "no-such-python"), "--work-dir", str(tmp_path / "work"),
    ])  # fmt: skip
    assert status == 0
    text = out.read_text()
    forward = next(rows for title, rows in _tables(text).items() if title.startswith("GFP-GAN forward"))
    one_face = [row[2] for row in forward if row[0].startswith("shipped default (") and row[1].endswith("aligned 512-px face")]
    assert one_face == ["fp32"]
    assert "The shipped default in bf16: not timed, this CPU lacks bf16 instructions (emulated)." in text


def test_the_default_models_unet_is_timed_per_step_at_its_own_size(quick_report):
    _, text = quick_report
    sampling = next(rows for title, rows in _tables(text).items() if title.startswith("IDM sampling"))
    (row,) = [row for row in sampling if "the shipped default (" in row[0]]
    size = row[0].partition(" px")[0]
    assert int(size) > 0 and row[3] == "1" and float(row[4]) > 0  # one face, ms per step
    flops = next(rows for title, rows in _tables(text).items() if title.startswith("How close to the machine's limit"))
    assert any(flops_row[0].startswith(f"IDM UNet step, {size} px, the shipped default") for flops_row in flops)


def test_official_rows_say_not_installed(quick_report):
    _, text = quick_report
    forward = next(rows for title, rows in _tables(text).items() if title.startswith("GFP-GAN forward"))
    official = [row for row in forward if row[1] == "official GFPGANv1Clean"]
    assert official and NOT_INSTALLED in official[0][2]
    assert f"Official side: {NOT_INSTALLED}" in text


def test_tables_carry_notes_on_what_limits_them(quick_report):
    _, text = quick_report
    for block in text.split("\n## ")[1:]:
        title = block.partition("\n")[0]
        if title.startswith(("Summary", "How to run", "Whole photos: seconds")):
            continue
        assert "Limited by" in block, title


def test_quality_rows_and_summary(quick_report):
    _, text = quick_report
    quality = next(rows for title, rows in _tables(text).items() if title.startswith("Quality against"))
    methods = [row[0] for row in quality[1:]]
    assert methods[:2] == ["degraded input", "GFP-GAN"]
    assert "IDM" in methods and any(method.startswith("hybrid") for method in methods)
    assert re.search(r"Hybrid at \d+ step\(s\)", text)
    assert "Streaming restore (CLI): peak RSS" in text


def test_training_bench_times_the_idm_models_real_step(monkeypatch):
    """The bench's IDM training step is train_idm.py's: with a `residual_v` scheduler (taken from the --idm model)
    the UNet gets the scaled noisy correction (`scale_model_input`), not x_t, and the loss is the L1 distance to
    `training_target`, not to the noise. (The step once copied into the bench fed x_t and the noise.)"""
    import torch
    import torch.nn.functional as F
    from diffusers import UNet2DModel

    from bench.context import TINY_GFPGAN_64, TINY_IDM_64
    from bench.sections.training import _train_worker_body
    from facerest.models.idm import IDMScheduler

    calls = {"add_noise": [], "unet": [], "backward": []}
    add_noise, unet_forward, backward = IDMScheduler.add_noise, UNet2DModel.forward, torch.Tensor.backward

    def spy_add_noise(self, original_samples, noise, noise_level):
        calls["add_noise"].append((original_samples, noise, noise_level))
        return add_noise(self, original_samples, noise, noise_level)

    def spy_unet(self, sample, timestep, *args, **kwargs):
        output = unet_forward(self, sample, timestep, *args, **kwargs)
        calls["unet"].append((sample.detach(), output.sample.detach()))
        return output

    def spy_backward(self, *args, **kwargs):
        calls["backward"].append(self.detach())
        return backward(self, *args, **kwargs)

    monkeypatch.setattr(IDMScheduler, "add_noise", spy_add_noise)
    monkeypatch.setattr(UNet2DModel, "forward", spy_unet)
    monkeypatch.setattr(torch.Tensor, "backward", spy_backward)
    config = {"prediction_type": "residual_v", "sigma_data": 0.5}
    spec = {"seed": 0, "quick": True, "steps": 1, "train_dir": None, "idm": TINY_IDM_64, "gfpgan": TINY_GFPGAN_64,
            "batch": 2, "idm_scheduler": config}
    _train_worker_body(0, 1, spec)

    scheduler = IDMScheduler(**config)
    assert len(calls["add_noise"]) == len(calls["unet"]) == 2  # a warm-up step and a timed one
    for (x_0, noise, gamma), (model_input, output), loss in zip(calls["add_noise"], calls["unet"], calls["backward"]):
        x_t, x_d = scheduler.add_noise(x_0, noise, gamma), model_input[:, 3:]
        torch.testing.assert_close(model_input[:, :3], scheduler.scale_model_input(x_t, gamma, condition=x_d))
        assert not torch.allclose(model_input[:, :3], x_t)
        target = scheduler.training_target(x_0, noise, condition=x_d, noise_level=gamma)
        torch.testing.assert_close(loss, F.l1_loss(output, target))


def test_idm_sample_spread_script_prints_its_table(tmp_path):
    from facerest.data import make_testset
    from tiny_pipelines import FACE_SIZE, tiny_pipeline

    hq = tmp_path / "hq_faces"
    hq.mkdir()
    for path in sorted(shared_path("data", "ffhq256", "test").iterdir())[:3]:
        (hq / path.name).write_bytes(path.read_bytes())
    make_testset(hq, tmp_path / "testset", resolution=FACE_SIZE, seed=0)
    tiny_pipeline("idm").save_pretrained(tmp_path / "idm")
    script = Path(__file__).resolve().parents[1] / "bench" / "idm_sample_spread.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "idm"), str(tmp_path / "testset"), "--steps", "2", "--seeds", "2"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    rows = dict(re.findall(r"^\| (.+?) \| ([\d.]+) \|$", done.stdout, flags=re.M))
    assert list(rows) == ["degraded input vs GT", "one-step estimate vs GT", "sample (2 steps) vs GT",
                          "sample vs another sample", "average of 2 samples vs GT", "sample vs one-step estimate"]
    assert all(0 < float(value) < 100 for value in rows.values())


def test_default_checks_script_scores_a_model_on_the_test_set(tmp_path):
    from facerest.data import make_testset
    from tiny_pipelines import tiny_pipeline

    hq = tmp_path / "hq_faces"
    hq.mkdir()
    for path in sorted(shared_path("data", "ffhq256", "test").iterdir())[:3]:
        (hq / path.name).write_bytes(path.read_bytes())
    make_testset(hq, tmp_path / "testset", resolution=192, seed=0)  # NIQE needs two 96-px blocks
    tiny_pipeline("idm").save_pretrained(tmp_path / "idm")
    script = Path(__file__).resolve().parents[1] / "bench" / "default_checks.py"

    def run_checks(*options: str) -> tuple[dict, str]:
        out = tmp_path / "checks.json"
        done = subprocess.run(
            [sys.executable, str(script), "--model", str(tmp_path / "idm"), "--steps", "1", "--parts", "clean,test",
             "--testset", str(tmp_path / "testset"), "--shared", str(shared_path()), "--out", str(out), *options],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(out.read_text()), done.stdout

    figures, stdout = run_checks()
    assert [line.split()[0] for line in stdout.splitlines()] == ["clean", "test"]
    assert 0 < figures["clean"]["psnr_lowest"] <= figures["clean"]["psnr_mean"] < 100
    test = figures["test"]
    assert 0 < test["psnr_input"] < 100 and 0 < test["psnr"] < 100 and 0 < test["ssim"] <= 1 and test["niqe"] > 0
    assert test["seconds_per_face"] > 0
    reseeded = run_checks("--seed", "8")[0]["test"]  # other noise for the same faces: the same input, another output
    assert reseeded["psnr_input"] == test["psnr_input"] and reseeded["psnr"] != test["psnr"]


def test_before_after_script_finds_a_blurred_face_blurrier(tmp_path):
    import cv2

    from facerest.images import load_image, save_image

    photos, restored = tmp_path / "photos", tmp_path / "restored"
    photos.mkdir()
    restored.mkdir()
    source = shared_path("data", "whole_imgs", "gfpgan_00.jpg")
    (photos / source.name).write_bytes(source.read_bytes())
    save_image(cv2.GaussianBlur(load_image(source), (0, 0), 2.0), restored / "gfpgan_00.png")
    script = Path(__file__).resolve().parents[1] / "bench" / "before_after.py"
    done = subprocess.run(
        [sys.executable, str(script), str(photos), str(restored), "--out", str(tmp_path / "faces.png"),
         "--detector-weights", str(shared_path("weights", "facexlib"))],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = r"^\| gfpgan_00_\d+ \| \d+ \| [\d.]+ \| [\d.]+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$"
    rows = re.findall(row, done.stdout, flags=re.M)
    assert len(rows) == 2  # the two faces of gfpgan_00
    assert all(float(ratio) < 0.8 and float(halved) < 0.9 and float(laplacian) < 0.5 for ratio, halved, laplacian in rows)
    assert load_image(tmp_path / "faces.png").shape[0] > 0


def test_detection_recall_script_finds_more_faces_with_the_shrunk_copies():
    script = Path(__file__).resolve().parents[1] / "bench" / "detection_recall.py"
    done = subprocess.run(
        [sys.executable, str(script), str(shared_path("data", "ffhq256", "test")), "--face-size", "128", "--count", "8",
         "--detector-weights", str(shared_path("weights", "facexlib")), "--group-photos", "1"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    group_rows = re.findall(r"^\| 3 \| 36 \| ([^|]+) \| (\d+) \| (\d+) \|$", done.stdout, flags=re.M)
    assert [label for label, _, _ in group_rows] == [
        "threshold on the 1,024-px copy", "and weak faces (0.9+) the finer copy finds, without the face check",
        "and weak faces (0.9+) the finer copy finds (the default)",
    ]  # fmt: skip
    (_, found_threshold, false_threshold), (_, found_weak, false_weak), (_, found_checked, false_checked) = group_rows
    assert 30 <= int(found_threshold) <= int(found_weak) <= 36 and int(false_threshold) == int(false_weak) == 0
    assert int(found_checked) == int(found_weak) and int(false_checked) == 0
    rows = re.findall(r"^\| 128 \| 8 \| ([^|]+) \| (\d+) \| ([\d.]+) \| (\d+) \| (\d+) \|$", done.stdout, flags=re.M)
    assert [row[0] for row in rows] == [
        "photo size only", "and shrunk 2x, 4x, 8x, without the face check", "and shrunk 2x, 4x, 8x (the default)",
    ]  # fmt: skip
    (_, found_full, *_), (_, found_shrunk, error, false_in_photos, false_on_backgrounds), checked = rows
    assert int(found_full) < int(found_shrunk) <= 8  # 6 and 8 when written
    assert 0 < float(error) < 0.5 and int(false_in_photos) + int(false_on_backgrounds) <= 1
    assert int(checked[1]) == int(found_shrunk)  # the check keeps these 128-px degraded faces


def test_portrait_detection_script_finds_each_face_and_fewer_others_with_the_check():
    script = Path(__file__).resolve().parents[1] / "bench" / "portrait_detection.py"
    done = subprocess.run(
        [sys.executable, str(script), str(shared_path("data", "ffhq256", "test")), "--count", "2",
         "--detector-weights", str(shared_path("weights", "facexlib"))],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^\| ([^|]+) \| 2 \| ([^|]+) \| (\d+) \| (\d+) \| (\d+) \|$", done.stdout, flags=re.M)
    assert len(rows) == 14  # seven layouts, without and with the check
    for unchecked, checked in zip(rows[0::2], rows[1::2]):
        assert unchecked[0] == checked[0] and unchecked[1] == "without the face check"
        assert int(checked[2]) == int(unchecked[2]) >= 1  # 01000's landmarks at 512 px lie 0.73 eye distances off
        assert int(checked[3]) <= int(unchecked[3])


def test_turned_photos_script_aligns_more_faces_with_the_turn_search_and_turns_no_upright_photo():
    script = Path(__file__).resolve().parents[1] / "bench" / "turned_photos.py"
    done = subprocess.run(
        [sys.executable, str(script), str(shared_path("data", "ffhq256", "test")), "--count", "4",
         "--upright", str(shared_path("data", "whole_imgs")), "--detector-weights", str(shared_path("weights", "facexlib"))],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = dict((label, (int(a), int(b))) for label, a, b in re.findall(r"^\| ([^|]+) \| 4 \| (\d) \| (\d) \|$", done.stdout, re.M))
    assert list(rows) == ["upright", "a quarter counter-clockwise", "upside down", "a quarter clockwise"]
    assert rows["upright"] == (4, 4)
    for label in list(rows)[1:]:  # as given, none aligned right; with the search, 2-4 of the 4 when written
        assert rows[label][0] < rows[label][1], label
    assert "whole_imgs: 0 of 10 upright photos turned []" in done.stdout


def test_degradation_throughput_script_prints_its_table(tmp_path):
    script = Path(__file__).resolve().parents[1] / "bench" / "degradation_throughput.py"
    out = tmp_path / "throughput.md"
    done = subprocess.run(
        [sys.executable, str(script), "--data", str(shared_path("data", "ffhq256", "test")), "--resolution", "32",
         "--batch_size", "2", "--batches", "1", "--workers", "0", "1", "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^\| (.+?) \| (\w+) \| ([\d-]+) \| ([\d.]+) \| ([\d.]+) \|$", out.read_text(), flags=re.M)
    assert [(what, workers) for what, _, workers, _, _ in rows] == [
        ("numpy/OpenCV, in the loader", "0"), ("numpy/OpenCV, in the loader", "1"),
        ("torch batches on cpu, after the loader", "0"), ("torch batches on cpu, after the loader", "1"),
        ("torch batches on cpu, faces already loaded", "-"),
    ]  # fmt: skip
    assert all(float(rate) > 0 for _, _, _, rate, _ in rows)


def test_degradation_sweep_script_degrades_each_way_and_scores_each_model(tmp_path):
    from tiny_pipelines import tiny_pipeline

    tiny_pipeline("idm").save_pretrained(tmp_path / "idm")
    script = Path(__file__).resolve().parents[1] / "bench" / "degradation_sweep.py"
    done = subprocess.run(
        [sys.executable, str(script), "--model", f"tiny={tmp_path / 'idm'}", "--model", f"again={tmp_path / 'idm'}",
         "--faces", "2", "--out", str(tmp_path / "sweep")],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cell = r"([+-][\d.]+) dB, ([+-][\d.]+), (\d)/2"
    rows = re.findall(rf"^\| ([^|]+) \| ([\d.]+) \| ([\d.]+) \| {cell} \| {cell} \|$", (tmp_path / "sweep.md").read_text(), flags=re.M)
    assert len(rows) == 15
    input_psnr = {row[0]: float(row[1]) for row in rows}
    assert all(10 < value < 45 for value in input_psnr.values())
    assert input_psnr["downsampled 8x"] < input_psnr["downsampled 4x"] < input_psnr["downsampled 2x"]
    # shrunk by the area filter and enlarged bicubically, a face keeps more of itself than resampled bilinearly
    assert input_psnr["downsampled 2x (area), enlarged bicubic"] > input_psnr["downsampled 2x"]
    assert input_psnr["downsampled 4x (area), enlarged bicubic"] > input_psnr["downsampled 4x"]
    assert input_psnr["noise, sigma 30"] < input_psnr["noise, sigma 15"]
    assert input_psnr["noise, sigma 20, JPEG 50"] < input_psnr["noise, sigma 10, JPEG 70"]
    assert input_psnr["JPEG quality 20"] < input_psnr["JPEG quality 40"]
    assert all(row[3:6] == row[6:9] for row in rows)  # the same model, the same seeds: the same gains


def test_degradation_sweep_scores_the_faces_of_whole_photos(tmp_path):
    from PIL import Image

    from bench.detection_recall import photo_with_a_face
    from facerest.images import list_images, load_image
    from tiny_pipelines import tiny_pipeline

    tiny_pipeline("idm").save_pretrained(tmp_path / "idm")
    face = load_image(list_images(shared_path("data", "ffhq256", "test"))[0])
    (tmp_path / "photos").mkdir()
    Image.fromarray(photo_with_a_face(face, seed=0)[0]).save(tmp_path / "photos" / "one_face.png")
    (tmp_path / "empty").mkdir()
    Image.new("RGB", (300, 200), (90, 120, 150)).save(tmp_path / "empty" / "wall.png")
    script = Path(__file__).resolve().parents[1] / "bench" / "degradation_sweep.py"

    def sweep(photos: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(script), "--model", f"tiny={tmp_path / 'idm'}", "--photos", str(photos),
             "--degradation", "downsampled 8x", "--degradation", "downsampled 2x",
             "--detector-weights", str(shared_path("weights", "facexlib")), "--out", str(tmp_path / "sweep")],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip

    done = sweep(tmp_path / "photos")
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "sweep.md").read_text()
    rows = re.findall(r"^\| ([^|]+) \| ([\d.]+) \| ([\d.]+) \| [+-][\d.]+ dB, [+-][\d.]+, (\d)/1 \|$", table, flags=re.M)
    assert [row[0] for row in rows] == ["downsampled 8x", "downsampled 2x"]  # the rows asked for, in that order
    input_psnr = {row[0]: float(row[1]) for row in rows}
    assert input_psnr["downsampled 8x"] < input_psnr["downsampled 2x"] < 45
    box_side = int(re.search(r"^- 1 faces \((\d+)-\1 px boxes\) of 1 whole photos", table, flags=re.M).group(1))
    assert 0.4 * face.shape[0] < box_side < face.shape[0]  # the face's box, not the photo's square

    done = sweep(tmp_path / "empty")
    assert done.returncode != 0 and "no face found in the 1 clean photo(s)" in done.stderr


def test_alignment_robustness_script_scores_each_way_of_cropping(tmp_path):
    from tiny_pipelines import tiny_pipeline

    tiny_pipeline("idm").save_pretrained(tmp_path / "idm")
    script = Path(__file__).resolve().parents[1] / "bench" / "alignment_robustness.py"
    done = subprocess.run(
        [sys.executable, str(script), str(shared_path("data", "ffhq256", "test")), "--model", str(tmp_path / "idm"),
         "--faces", "2", "--resolution", "64"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    number = r"([\d.]+)"
    rows = re.findall(
        rf"^\| ([^|]+) \| 2 \| {number} \| {number} \| {number} \| {number} \| ([+-][\d.]+) \|$", done.stdout, flags=re.M
    )
    assert [row[0] for row in rows] == ["as aligned", "zoomed 0.88", "zoomed 1.12", "shifted 12 px"]
    for _, input_psnr, input_ssim, restored_psnr, restored_ssim, gain in rows:
        assert 10 < float(input_psnr) < 45 and 0 < float(input_ssim) <= 1 and 0 < float(restored_ssim) <= 1
        assert abs(float(restored_psnr) - float(input_psnr) - float(gain)) < 0.011
    assert len({row[1] for row in rows}) > 1  # the faces moved: other test sets


def test_faces_are_moved_in_their_frames_as_named(monkeypatch):
    import cv2
    import numpy as np

    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))  # its sibling imports, as when it runs as a script
    from alignment_robustness import moved

    face = cv2.GaussianBlur(np.random.default_rng(0).uniform(0, 255, (256, 256, 3)), (0, 0), 3).astype(np.uint8)
    np.testing.assert_array_equal(moved(face, 1.0, 0), face)
    np.testing.assert_array_equal(moved(face, 1.0, 12)[12:, 12:], face[:-12, :-12])  # down and to the right
    larger = moved(face, 1.12, 0)
    np.testing.assert_allclose(larger[128, 128], face[128, 128], atol=2)  # zoomed about the centre


def test_band_errors_script_splits_each_face_error_into_coarse_and_fine_bands(tmp_path):
    from tiny_pipelines import tiny_pipeline

    tiny_pipeline("idm").save_pretrained(tmp_path / "idm")
    script = Path(__file__).resolve().parents[1] / "bench" / "band_errors.py"
    done = subprocess.run(
        [sys.executable, str(script), "--model", str(tmp_path / "idm"), "--faces", "2", "--out", str(tmp_path / "bands"),
         "--degradation", "gaussian blur, sigma 3 px", "--degradation", "JPEG quality 40"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    number = r"([\d.]+)"
    rows = re.findall(
        rf"^\| ([^|]+) \| (input|restored) \| {number} \| {number} \| {number} \| {number} \|$",
        (tmp_path / "bands.md").read_text(), flags=re.M,
    )  # fmt: skip
    assert [row[:2] for row in rows] == [
        ("gaussian blur, sigma 3 px", "input"), ("gaussian blur, sigma 3 px", "restored"),
        ("JPEG quality 40", "input"), ("JPEG quality 40", "restored"),
    ]  # fmt: skip
    values = {row[:2]: [float(value) for value in row[2:]] for row in rows}
    for (_, face), (whole, coarse, fine, mean_colour_matched) in values.items():
        assert 0 < whole < 60 and whole < min(coarse, fine) + 1  # the two bands nearly orthogonal (a tiny model: low)
        if face == "input":
            assert mean_colour_matched == whole  # its own mean colour: nothing changes
    blurred_coarse, blurred_fine = values[("gaussian blur, sigma 3 px", "input")][1:3]
    assert blurred_fine < blurred_coarse - 3  # a blur takes the detail away and keeps the shading


def test_large_photo_script_times_the_app_and_the_pipeline():
    script = Path(__file__).resolve().parents[1] / "bench" / "large_photo.py"
    photo = shared_path("data", "whole_imgs", "gfpgan_Blake_Lively.jpg")
    runs = {}
    for mode in ("app", "pipeline"):
        done = subprocess.run(
            [sys.executable, str(script), str(photo), "--resize", "1000x663", "--upscale", "2",
             "--detector-weights", str(shared_path("weights", "facexlib"))] + (["--pipeline"] if mode == "pipeline" else []),
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs[mode] = done.stdout
    for stdout in runs.values():
        assert re.search(r"gfpgan_Blake_Lively\.jpg: 2 faces, result 2000x1326, [\d.]+ s$", stdout, flags=re.M), stdout
        assert re.search(r"^peak memory [\d.]+ GiB$", stdout, flags=re.M), stdout
