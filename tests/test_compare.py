"""``python -m facerest compare``: a row per method on a small paired test set, Markdown and CSV, faces per row."""

import csv
import shutil

import pytest

from facerest.cli import main
from facerest.data import make_testset
from facerest.images import list_images, load_image
from facerest.evaluation import METRIC_COLUMNS
from conftest import shared_path
from tiny_pipelines import FACE_SIZE, save_tiny_pipelines


@pytest.fixture(scope="module")
def testset(tmp_path_factory, ffhq_test_dir):
    """Four FFHQ test faces degraded at 64 px."""
    root = tmp_path_factory.mktemp("compare")
    for path in list_images(ffhq_test_dir)[:4]:
        (root / "hq_source").mkdir(exist_ok=True)
        shutil.copy(path, root / "hq_source" / path.name)
    make_testset(root / "hq_source", root / "testset", resolution=FACE_SIZE, seed=0)
    return root / "testset"


def test_compare_writes_a_row_per_method(testset, tmp_path, capsys):
    models = save_tiny_pipelines(tmp_path / "models")
    out = tmp_path / "table"
    status = main(
        [
            "compare", "--testset", str(testset), "--out", str(out), "--steps", "1,2", "--strength", "0.5",
            "--model", f"gan={models['gfpgan']}", "--model", f"idm={models['idm']}",
            "--model", f"hybrid={models['gfpgan']}+{models['idm']}",  # the hybrid of the two saved pipelines
            "--weights-dir", str(shared_path("weights")), "--batch-size", "3",
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0

    methods = [
        "degraded input", "ground truth", "gan", "idm (1 step)", "idm (2 steps)",
        "hybrid (1 step, strength 0.5)", "hybrid (2 steps, strength 0.5)",
    ]
    with open(out.with_name("table.csv"), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["Method"] for row in rows] == methods
    assert all(method in printed for method in methods)
    assert out.with_name("table.md").read_text(encoding="utf-8").startswith("| Method | Count |")

    columns = list(rows[0])
    assert columns[:2] == ["Method", "Count"] and columns[-1] == "Seconds per face"
    assert {METRIC_COLUMNS[name] for name in ("psnr", "ssim", "niqe", "fid", "identity")} <= set(columns)
    assert METRIC_COLUMNS["lpips"] in columns or METRIC_COLUMNS["lpips-random"] in columns
    by_method = {row["Method"]: row for row in rows}
    for method in methods[2:]:
        assert float(by_method[method]["Seconds per face"]) > 0
        assert float(by_method[method][METRIC_COLUMNS["psnr"]]) > 0 and by_method[method]["Count"] == "4"
    assert by_method["degraded input"]["Seconds per face"] == ""

    for folder in ("gan", "idm_1_step", "idm_2_steps", "hybrid_1_step_strength_0.5", "hybrid_2_steps_strength_0.5"):
        restored = list_images(out / folder)
        assert [path.name for path in restored] == [path.name for path in list_images(testset / "hq")]
        assert load_image(restored[0]).shape == (FACE_SIZE, FACE_SIZE, 3)


def test_compare_arguments(testset, capsys):
    assert main(["compare", "--testset", str(testset), "--model", "no-equals-sign"]) == 2
    assert "error: --model takes NAME=PATH" in capsys.readouterr().err
    assert main(["compare", "--testset", str(testset), "--model", "a=x", "--steps", "ten"]) == 2
    assert "error: --steps takes comma-separated whole numbers" in capsys.readouterr().err
    for batch_size in ("0", "-3"):
        assert main(["compare", "--testset", str(testset), "--model", "a=x", "--batch-size", batch_size]) == 2
        assert f"error: --batch-size must be a whole number of at least 1, got {batch_size}" in capsys.readouterr().err
    assert main(["compare", "--testset", str(testset), "--model", "a=x", "--seed", str(2**64)]) == 2
    assert f"error: --seed must be a whole number from 0 to {2**63 - 1}, got {2**64}" in capsys.readouterr().err
    (testset.parent / "a-file").write_text("mine")
    assert main(["compare", "--testset", str(testset), "--model", "a=x", "--out", str(testset.parent / "a-file" / "t")]) == 2
    assert "error: cannot write into the folder of --out" in capsys.readouterr().err
    assert main(["compare", "--testset", str(testset), "--model", "a=x", "--device", "cpu", "--dtype", "fp16"]) == 2
    assert "error: --dtype fp16 runs on a GPU" in capsys.readouterr().err


def test_a_folder_that_is_not_a_test_set_is_one_error_line(testset, tmp_path, capsys):
    (tmp_path / "photos" / "hq").mkdir(parents=True)
    assert main(["compare", "--testset", str(tmp_path / "photos"), "--model", "a=x"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"error: {tmp_path / 'photos'} is not a paired test set: it has no lq/ folder "
        f"(python -m facerest make-testset HQ_FOLDER {tmp_path / 'photos'} writes one)"
    )
    assert main(["compare", "--testset", str(tmp_path / "nowhere"), "--model", "a=x"]) == 2
    assert capsys.readouterr().err.strip() == f"error: test set folder not found: {tmp_path / 'nowhere'}"


def test_compare_writes_only_what_it_owns(testset, tmp_path, capsys):
    """An --out folder of the user's, or a table of theirs where OUT.md or OUT.csv would go, is refused and left as it
    was; a comparison's own folder is written again."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "important.txt").write_text("keep")
    (tmp_path / "notes.md").write_text("my notes")
    models = save_tiny_pipelines(tmp_path / "models")
    capsys.readouterr()
    arguments = ["compare", "--testset", str(testset), "--model", f"gan={models['gfpgan']}", "--weights-dir", str(shared_path("weights"))]
    assert main([*arguments, "--out", str(mine)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {mine} holds files that compare did not write; give a new or empty folder"
    assert main([*arguments, "--out", str(tmp_path / "notes")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {tmp_path / 'notes'}: {tmp_path / 'notes.md'} exists and compare did not write it; give another --out"
    assert [path.name for path in mine.iterdir()] == ["important.txt"] and (mine / "important.txt").read_text() == "keep"
    assert (tmp_path / "notes.md").read_text() == "my notes" and not (tmp_path / "notes").exists()
    assert main([*arguments, "--out", str(tmp_path / "table"), "--strength", "3"]) == 2
    assert capsys.readouterr().err.strip() == "error: --strength must lie in (0, 1], got 3.0"
    for _ in range(2):  # the second run replaces the first's table and faces
        assert main([*arguments, "--out", str(tmp_path / "table"), "--strength", "0.5"]) == 0
        printed = capsys.readouterr().out
        assert "strength 0.5 not used: it applies to hybrids, and none was compared" in printed
