import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, shared_path
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from facerest import metrics
from facerest.errors import FacerestError
from facerest.evaluation import METRIC_COLUMNS, UNAVAILABLE, evaluate_folders, save_fid_statistics
from facerest.images import image_to_tensor, list_images, load_image, save_image
from facerest.models.arcface import ArcFaceResNet18
from facerest.output_folders import RESTORE_COMMAND, RESTORED_FACES_FOLDER, mark_output_folder
from facerest.weights import MissingWeightsError


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1].copy()


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


@pytest.fixture(scope="module")
def faces(ffhq_test_dir) -> list[np.ndarray]:
    return [load_image(path) for path in list_images(ffhq_test_dir)[:6]]


@pytest.fixture
def isolated_weights(tmp_path, monkeypatch) -> Path:
    """Only the project's shared weights are findable: no user caches, no downloads."""
    weights = shared_path("weights")
    monkeypatch.setenv("FACEREST_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("FACEREST_CACHE", str(tmp_path / "facerest-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return weights


@pytest.fixture
def paired_folders(tmp_path, faces) -> tuple[Path, Path]:
    """hq/ with 4 real faces as PNG, lq/ with blurred JPEG-q20 copies of them under the same names."""
    hq, lq = tmp_path / "hq", tmp_path / "lq"
    hq.mkdir(), lq.mkdir()
    for index, face in enumerate(faces[:4]):
        cv2.imwrite(str(hq / f"face{index}.png"), face[..., ::-1])
        cv2.imwrite(str(lq / f"face{index}.jpg"), blur(face, 1.5)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 20])
    return lq, hq


def random_fid_inception() -> metrics.FIDInception:
    """A seeded random Inception whose features keep a usable scale (He init); for tests only."""
    torch.manual_seed(0)
    model = metrics.FIDInception()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return model.eval()


# PSNR / SSIM ------------------------------------------------------------------------------------------------------


def test_psnr_and_ssim_agree_with_scikit_image_on_degraded_real_faces(faces):
    degraded = [jpeg(faces[0], 25), blur(faces[1], 2.0), jpeg(blur(faces[2], 1.0), 40), blur(jpeg(faces[3], 10), 0.8)]
    ours_psnr, ours_ssim = metrics.psnr(degraded, faces[:4]), metrics.ssim(degraded, faces[:4])
    for restored, gt, p, s in zip(degraded, faces, ours_psnr, ours_ssim):
        assert p == pytest.approx(peak_signal_noise_ratio(gt, restored, data_range=255), abs=1e-4)
        reference = structural_similarity(
            gt, restored, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert s == pytest.approx(reference, abs=1e-4)
    assert 15 < ours_psnr.min() and ours_psnr.max() < 45 and 0.3 < ours_ssim.min() and ours_ssim.max() < 1


def test_pixel_metrics_accept_arrays_lists_and_tensors():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + 1, 0, 255).astype(np.uint8)
    as_tensor = torch.stack([image_to_tensor(image) for image in a])
    assert metrics.psnr(a, a).tolist() == [np.inf, np.inf]
    np.testing.assert_allclose(metrics.psnr(list(a), b), metrics.psnr(as_tensor, b))
    assert metrics.ssim(a[0], a[0])[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(a.astype(np.float32), b)
    with pytest.raises(ValueError, match="2 restored images but 1"):
        metrics.ssim(a, b[:1])


# NIQE -------------------------------------------------------------------------------------------------------------


def test_niqe_matches_basicsr_on_real_faces(isolated_weights, ffhq_test_dir):
    # basicsr 1.4.2's calculate_niqe(img, crop_border=0) on these test faces. On smoother faces basicsr's float32
    # local variance loses precision and drifts by up to ~0.02 from this float64 port (MATLAB computes in double).
    expected = {"01000.jpg": 4.095123, "01004.jpg": 5.648657, "01005.jpg": 5.266541}
    params = metrics.load_niqe_params()
    images = [load_image(ffhq_test_dir / name) for name in expected]
    np.testing.assert_allclose(metrics.niqe(images, params), list(expected.values()), atol=1e-3)


def test_niqe_scores_clean_faces_better_than_degraded_ones(isolated_weights, faces):
    params = metrics.load_niqe_params()
    clean = metrics.niqe(faces, params)
    degraded = metrics.niqe([jpeg(blur(face, 3.0), 10) for face in faces], params)
    assert np.all(clean < degraded), (clean, degraded)


def test_matlab_downscale_keeps_constants_and_halves_sizes():
    image = np.full((192, 130), 0.25)
    resized = metrics._matlab_bicubic_downscale(image, 0.5)
    assert resized.shape == (96, 65)
    np.testing.assert_allclose(resized, 0.25)


def test_niqe_needs_two_blocks(isolated_weights):
    params = metrics.load_niqe_params()
    with pytest.raises(FacerestError, match="two 96x96 blocks"):
        metrics.niqe(np.zeros((100, 150, 3), np.uint8), params)


# LPIPS ------------------------------------------------------------------------------------------------------------


def test_random_backbone_lpips_is_seeded_and_orders_degradations(faces):
    model = metrics.load_lpips(random_backbone=True, device="cpu")
    again = metrics.load_lpips(random_backbone=True, device="cpu")
    mild, strong = [jpeg(face, 60) for face in faces[:3]], [blur(jpeg(face, 10), 2.5) for face in faces[:3]]
    mild_scores = metrics.lpips_distance(mild, faces[:3], model)
    np.testing.assert_allclose(mild_scores, metrics.lpips_distance(mild, faces[:3], again))
    np.testing.assert_allclose(metrics.lpips_distance(faces[:3], faces[:3], model), 0.0, atol=1e-7)
    assert np.all(mild_scores < metrics.lpips_distance(strong, faces[:3], model))


def test_a_metric_whose_package_is_missing_is_unavailable_with_what_to_install(paired_folders, monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)
    monkeypatch.setitem(sys.modules, "pytorch_fid.inception", None)
    lq, hq = paired_folders
    evaluation = evaluate_folders(lq, hq, metrics=["lpips-random", "fid", "psnr"])
    row = evaluation.rows[0]
    assert row[METRIC_COLUMNS["lpips-random"]] == row[METRIC_COLUMNS["fid"]] == UNAVAILABLE
    assert isinstance(row[METRIC_COLUMNS["psnr"]], float)
    assert any("LPIPS needs the lpips package" in note and "pip install lpips" in note for note in evaluation.notes)
    assert any("FID needs the pytorch-fid package" in note and "pip install pytorch-fid" in note for note in evaluation.notes)


def test_missing_alexnet_names_the_file_and_places(isolated_weights, tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        metrics.load_lpips(extra_dirs=[tmp_path / "mine"])
    message = str(info.value)
    assert metrics.ALEXNET_FILENAME in message
    for place in (isolated_weights, tmp_path / "mine", tmp_path / "torch-home" / "hub" / "checkpoints"):
        assert str(place) in message


# FID --------------------------------------------------------------------------------------------------------------


def _independent_frechet(mu1, sigma1, mu2, sigma2) -> float:
    # Tr((S1 S2)^1/2) = sum of sqrt(eigenvalues of S1^1/2 S2 S1^1/2), a symmetric PSD matrix.
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ sigma2 @ root1), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root)


@pytest.mark.parametrize("samples", [400, 12], ids=["full-rank", "rank-deficient"])
def test_frechet_distance_agrees_with_independent_float64(samples):
    rng = np.random.default_rng(samples)
    dims = 32
    a = rng.normal(0.0, 1.0, (samples, dims))
    b = rng.normal(0.3, 1.0, (samples, dims)) @ rng.normal(0.0, 0.5, (dims, dims))
    mu1, sigma1, mu2, sigma2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    expected = _independent_frechet(mu1, sigma1, mu2, sigma2)
    assert metrics.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert metrics.frechet_distance(mu1, sigma1, mu1, sigma1) == pytest.approx(0.0, abs=1e-6)


def test_fid_statistics_of_a_folder_round_trip_through_npz(tmp_path, paired_folders):
    _, hq = paired_folders
    saved = save_fid_statistics(hq, tmp_path / "stats" / "hq.npz", model=random_fid_inception())
    loaded = metrics.FIDStatistics.load(tmp_path / "stats" / "hq.npz")
    assert loaded.mu.shape == (2048,) and loaded.sigma.shape == (2048, 2048) and np.isfinite(loaded.sigma).all()
    np.testing.assert_array_equal(saved.mu, loaded.mu)
    np.testing.assert_array_equal(saved.sigma, loaded.sigma)
    np.savez(tmp_path / "bad.npz", mean=saved.mu)
    with pytest.raises(FacerestError, match="'mu' and 'sigma'"):
        metrics.FIDStatistics.load(tmp_path / "bad.npz")


class PooledPixels(nn.Module):
    """A 48-d stand-in for Inception (4 x 4 average-pooled RGB), so the 2048-d matrix square root is not paid."""

    def __init__(self):
        super().__init__()
        self.identity = nn.Conv2d(3, 3, kernel_size=1, bias=False)
        nn.init.dirac_(self.identity.weight)

    def forward(self, images):
        return nn.functional.adaptive_avg_pool2d(self.identity(images), 4).flatten(1)


def test_evaluate_fid_against_gt_folder_equals_fid_against_its_saved_statistics(tmp_path, paired_folders, monkeypatch):
    lq, hq = paired_folders
    monkeypatch.setattr(metrics.FIDInception, "from_pretrained", classmethod(lambda cls, **kwargs: PooledPixels()))
    save_fid_statistics(hq, tmp_path / "hq.npz", model=PooledPixels())
    against_folder = evaluate_folders(lq, hq, metrics=["fid"]).rows[0]["FID↓"]
    against_statistics = evaluate_folders(lq, metrics=["fid"], fid_stats=tmp_path / "hq.npz").rows[0]["FID↓"]
    assert against_folder > 0
    assert against_statistics == pytest.approx(against_folder, rel=1e-9)
    assert evaluate_folders(hq, hq, metrics=["fid"]).rows[0]["FID↓"] == pytest.approx(0.0, abs=1e-6)


def test_fid_statistics_of_a_folder_take_its_sub_folders_as_evaluate_does(tmp_path, paired_folders, monkeypatch):
    lq, hq = paired_folders
    for folder in (lq, hq):  # half of each folder's images moved into a sub-folder
        (folder / "part").mkdir()
        for path in sorted(path for path in folder.iterdir() if path.is_file())[::2]:
            path.rename(folder / "part" / path.name)
    monkeypatch.setattr(metrics.FIDInception, "from_pretrained", classmethod(lambda cls, **kwargs: PooledPixels()))
    save_fid_statistics(hq, tmp_path / "hq.npz", model=PooledPixels())
    against_folder = evaluate_folders(lq, hq, metrics=["fid"]).rows[0]["FID↓"]
    against_statistics = evaluate_folders(lq, metrics=["fid"], fid_stats=tmp_path / "hq.npz").rows[0]["FID↓"]
    assert against_statistics == pytest.approx(against_folder, rel=1e-9)


# Identity ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_arcface() -> ArcFaceResNet18:
    torch.manual_seed(0)
    return ArcFaceResNet18().eval()


def test_arcface_matches_gfpgan_state_dict_layout_and_loads_it(tmp_path, random_arcface):
    model = random_arcface
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    assert shapes["conv1.weight"] == (64, 1, 3, 3)
    assert shapes["layer1.0.bn0.weight"] == (64,)
    assert shapes["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert shapes["layer4.1.prelu.weight"] == (1,)
    assert shapes["fc5.weight"] == (512, 512 * 8 * 8)
    assert shapes["bn5.running_var"] == (512,)
    assert not any(".se." in name for name in shapes)
    # GFP-GAN's file was saved from DataParallel: keys carry a "module." prefix.
    prefixed = {f"module.{name}": tensor for name, tensor in model.state_dict().items()}
    torch.save(prefixed, tmp_path / "arcface_resnet18.pth")
    loaded = ArcFaceResNet18.from_pretrained(tmp_path)
    faces = torch.rand(2, 3, 96, 96) * 2 - 1
    torch.testing.assert_close(loaded(loaded.prepare_input(faces)), model(model.prepare_input(faces)))
    assert model(model.prepare_input(faces)).shape == (2, 512)


def test_identity_angle_is_zero_for_the_same_face_and_in_degrees(faces, random_arcface):
    np.testing.assert_allclose(metrics.identity_angle(faces[:2], faces[:2], random_arcface), 0.0, atol=1e-3)
    angles = metrics.identity_angle(faces[:2], faces[2:4], random_arcface)
    assert np.all((angles > 0) & (angles <= 180))


# Folder evaluation ------------------------------------------------------------------------------------------------


def test_evaluate_skips_bad_files_and_reports_gt_niqe(isolated_weights, paired_folders):
    lq, hq = paired_folders
    (lq / "empty.png").write_bytes(b"")
    (hq / "empty.png").write_bytes((hq / "face0.png").read_bytes())
    (lq / "notes.jpg").write_text("not an image")
    (hq / "notes.jpg").write_bytes((hq / "face1.png").read_bytes())
    truncated = (hq / "face2.png").read_bytes()
    (lq / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    (hq / "cut.png").write_bytes(truncated)
    evaluation = evaluate_folders(lq, hq, metrics=["psnr", "ssim", "niqe"], device="cpu")
    restored_row, gt_row = evaluation.rows
    assert restored_row["Count"] == 4 and gt_row["Count"] == 4
    assert 15 < restored_row["PSNR↑ (RGB)"] < 40 and 0 < restored_row["SSIM↑ (RGB)"] < 1
    assert gt_row["NIQE↓"] < restored_row["NIQE↓"]
    skipped = "\n".join(note for note in evaluation.notes if note.startswith("skipped"))
    assert "empty.png: empty file" in skipped and "notes.jpg: not an image" in skipped and "cut.png" in skipped


def test_evaluate_marks_metrics_without_weights_unavailable_and_runs_the_rest(isolated_weights, paired_folders):
    lq, hq = paired_folders
    evaluation = evaluate_folders(lq, hq, device="cpu")  # default: all metrics that apply
    row = evaluation.rows[0]
    needed = {"lpips": metrics.ALEXNET_FILENAME, "fid": metrics.FID_INCEPTION_FILENAME, "identity": "arcface_resnet18.pth"}
    for name, filename in needed.items():
        assert row[METRIC_COLUMNS[name]] == UNAVAILABLE
        (note,) = [note for note in evaluation.notes if note.startswith(METRIC_COLUMNS[name] + " ")]
        assert filename in note and str(isolated_weights) in note
    assert 0 < row[METRIC_COLUMNS["lpips-random"]] < 1
    assert all(isinstance(row[METRIC_COLUMNS[name]], float) for name in ("niqe", "psnr", "ssim"))


def test_evaluate_without_gt_gives_niqe_only(isolated_weights, paired_folders):
    lq, _ = paired_folders
    evaluation = evaluate_folders(lq)
    assert evaluation.columns == ["Images", "Count", "NIQE↓"]
    assert len(evaluation.rows) == 1 and evaluation.rows[0]["NIQE↓"] > 0
    with pytest.raises(FacerestError, match="'psnr' needs --gt"):
        evaluate_folders(lq, metrics=["psnr"])


def test_evaluate_folder_errors(tmp_path, paired_folders):
    lq, hq = paired_folders
    with pytest.raises(FacerestError, match="folder not found"):
        evaluate_folders(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacerestError, match="no image files"):
        evaluate_folders(tmp_path / "empty")
    (hq / "face0.png").rename(hq / "other.png")
    with pytest.raises(FacerestError, match=r"file names differ .*only in .*lq \(face0\).*only in .*hq \(other\)"):
        evaluate_folders(lq, hq, metrics=["psnr"])
    with pytest.raises(FacerestError, match="unknown metric 'psnr2'"):
        evaluate_folders(lq, metrics=["psnr2"])


def test_evaluate_reads_sub_folders_as_restore_writes_them_and_leaves_out_its_face_crops(tmp_path, faces):
    # restore keeps an input folder's sub-folders (realworld_lq/CelebA/..., realworld_lq/LFW-Test/...), where two
    # images may share a file name, and puts its face crops under OUTPUT/faces/
    restored, gt = tmp_path / "restored", tmp_path / "gt"
    for index, sub_folder in enumerate(["CelebA", "LFW-Test"]):
        save_image(blur(faces[index], 2.0), restored / sub_folder / "0001.png")
        save_image(faces[index], gt / sub_folder / "0001.jpg")
        save_image(faces[index][:64, :64], restored / RESTORED_FACES_FOLDER / sub_folder / "0001_00.png")
    mark_output_folder(restored, RESTORE_COMMAND)

    row = evaluate_folders(restored, gt, metrics=["psnr"]).rows[0]
    pairs = [(restored / name / "0001.png", gt / name / "0001.jpg") for name in ("CelebA", "LFW-Test")]
    expected = np.mean([metrics.psnr([load_image(a)], [load_image(b)])[0] for a, b in pairs])
    assert row["Count"] == 2 and row["PSNR↑ (RGB)"] == pytest.approx(expected, abs=1e-3)
    assert evaluate_folders(restored, metrics=["niqe"]).rows[0]["Count"] == 2

    (gt / "LFW-Test" / "0001.jpg").rename(gt / "LFW-Test" / "0002.jpg")
    with pytest.raises(FacerestError, match=r"file names differ .*only in .*restored \(LFW-Test/0001\)"):
        evaluate_folders(restored, gt, metrics=["psnr"])


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "facerest", "evaluate", *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cli_prints_the_table_and_writes_markdown_and_csv(isolated_weights, paired_folders, tmp_path):
    lq, hq = paired_folders
    out = tmp_path / "out" / "t"
    result = _run_cli("--restored", str(lq), "--gt", str(hq), "--metrics", "psnr", "niqe", "--out", str(out))
    assert result.returncode == 0, result.stderr
    header = "| Images | Count | NIQE↓ | PSNR↑ (RGB) |"
    assert header in result.stdout and f"| {hq} (ground truth) | 4 |" in result.stdout
    assert (tmp_path / "out" / "t.md").read_text(encoding="utf-8").startswith(header)
    with open(tmp_path / "out" / "t.csv", newline="", encoding="utf-8") as handle:
        header, restored_row, gt_row = list(csv.reader(handle))
    assert header == ["Images", "Count", "NIQE↓", "PSNR↑ (RGB)"] and float(restored_row[3]) > 15 and gt_row[3] == ""


def test_cli_missing_folder_is_one_error_line(tmp_path):
    result = _run_cli("--restored", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: folder not found: {tmp_path / 'nowhere'}"]


def test_cli_option_errors_are_one_line_before_any_work(paired_folders, tmp_path, capsys):
    from facerest.cli import main

    lq, hq = paired_folders
    for batch_size in ("0", "-3"):
        assert main(["evaluate", "--restored", str(lq), "--batch-size", batch_size]) == 2
        err = capsys.readouterr().err
        assert err == f"error: --batch-size must be a whole number of at least 1, got {batch_size}\n"
    (tmp_path / "a-file").write_text("mine")
    out = tmp_path / "a-file" / "table"
    assert main(["evaluate", "--restored", str(lq), "--gt", str(hq), "--metrics", "psnr", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: cannot write into the folder of --out") and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1


def test_cli_exit_status_says_when_the_evaluation_is_incomplete(isolated_weights, paired_folders, tmp_path, capsys):
    from facerest.cli import main

    lq, hq = paired_folders
    arguments = ["--restored", str(lq), "--gt", str(hq), "--out", str(tmp_path / "t")]
    assert main(["evaluate", *arguments, "--metrics", "psnr,ssim"]) == 0  # comma-separated, as other tools take them
    assert "| PSNR↑ (RGB) | SSIM↑ (RGB) |" in capsys.readouterr().out
    assert main(["evaluate", *arguments, "--metrics", "niqe"]) == 0
    capsys.readouterr()

    (lq / "face0.jpg").write_bytes(b"")  # an unreadable image is skipped and listed
    assert main(["evaluate", *arguments, "--metrics", "psnr"]) == 1
    captured = capsys.readouterr()
    assert f"skipped {lq / 'face0.jpg'}: empty file" in captured.out
    assert "incomplete evaluation: 1 images skipped" in captured.err

    small = tmp_path / "small"  # NIQE cannot score images this small: no metric gives a value
    small.mkdir()
    for index in range(2):
        cv2.imwrite(str(small / f"{index}.png"), np.full((64, 64, 3), 40 * index + 20, np.uint8))
    assert main(["evaluate", "--restored", str(small), "--metrics", "niqe", "--out", str(tmp_path / "s")]) == 1
    assert "incomplete evaluation: no metric could be computed" in capsys.readouterr().err


def test_a_metric_failing_on_the_images_is_reported_and_the_others_still_run(isolated_weights, tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    for index in range(2):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((64, 64, 3), 40 * index + 20, np.uint8))
    evaluation = evaluate_folders(folder, folder, metrics=["psnr", "niqe"])
    restored_row, gt_row = evaluation.rows
    assert restored_row["PSNR↑ (RGB)"] == np.inf
    assert restored_row["NIQE↓"] == gt_row["NIQE↓"] == UNAVAILABLE
    expected_note = "NIQE↓ unavailable: NIQE needs images with at least two 96x96 blocks"
    assert any(note.startswith(expected_note) for note in evaluation.notes)
