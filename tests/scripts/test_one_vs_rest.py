"""scripts/one_vs_rest.py and ``scripts/results.py ovr``: which sets are found as ID and as OOD,
a tiny real one-vs-rest run (real MNIST, SVHN and CIFAR-100 generated in torchvision's own
formats), skipping finished files, ``--overwrite``, ``--download``, and bad input."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torchvision.datasets as tvd

from netinv.presets import PRESETS, get_preset
from tests.helpers.datasets import http_server, write_cifar, write_svhn
from tests.helpers.scripts import load

one_vs_rest = load("one_vs_rest")
results = load("results")

TINY = ["data/train_limit=100", "data/test_limit=40", "data/id_val_size=20",
        "classifier/width=8", "classifier/epochs=1", "classifier/batch_size=32",
        "inversion/width=8", "inversion/steps=3", "inversion/samples_per_round=40",
        "garbage/noise_count=40", "rounds/count=1"]
SETS = [arg for item in TINY for arg in ("--set", item)]


def make_root(root: Path, real: Path, *, tinyimagenet: bool = False) -> Path:
    """A data root: the real MNIST (and TinyImageNet's val) linked in, SVHN and CIFAR-100
    generated (train and test) in torchvision's layouts."""
    root.mkdir()
    (root / "MNIST").symlink_to(real / "MNIST")
    if tinyimagenet:
        (root / "tiny-imagenet-200").symlink_to(real / "tiny-imagenet-200")
    write_svhn(root, "train", n=150, seed=1)
    write_svhn(root, "test", n=60, seed=2)
    write_cifar(root, "cifar100", n=100, seed=3)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``NETINV_CACHE`` in a scratch folder for this module: the generated sets never reach
    the user's cache."""
    path = tmp_path_factory.mktemp("ovr-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NETINV_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    return make_root(tmp_path_factory.mktemp("ovr") / "data", data_root)


def test_discovery_finds_generated_svhn_and_cifar100_as_id_and_ood(tmp_path: Path,
                                                                   data_root: Path) -> None:
    found = one_vs_rest.discover(make_root(tmp_path / "data", data_root, tinyimagenet=True))
    assert found == {"mnist": ("train", "test"), "fashionmnist": (), "cifar10": (),
                     "svhn": ("train", "test"), "cifar100": ("train", "test"),
                     "tinyimagenet": ("test",)}  # the offline copy: val only
    assert one_vs_rest.id_sets(found) == ["mnist", "svhn", "cifar100"]
    assert one_vs_rest.ood_sets(found) == ["mnist", "svhn", "cifar100", "tinyimagenet"]
    assert one_vs_rest.discover(tmp_path / "nothing-here") == {
        name: () for name in one_vs_rest.OVR_SETS}


def test_id_sets_without_a_preset_run_the_cifar10_one_untuned(
        monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    monkeypatch.setitem(PRESETS, "cifar10", {**get_preset("mnist"), "data/id": "cifar10"})
    todo, done = one_vs_rest.plan(root, seeds=(0, 1), folder=root.parent / "out")
    assert [(r.name, r.preset, r.tuned) for r in todo] == [
        ("mnist-s0", "mnist", True), ("svhn-s0", "cifar10", False),
        ("cifar100-s0", "cifar10", False), ("mnist-s1", "mnist", True),
        ("svhn-s1", "cifar10", False), ("cifar100-s1", "cifar10", False)]
    assert done == []
    assert todo[1].overrides["data/ood"] == ["mnist", "cifar100"]
    assert todo[1].overrides["data/id"] == "svhn" and todo[1].overrides["rounds/seed"] == 0
    monkeypatch.delitem(PRESETS, "cifar10")
    with pytest.raises(ValueError, match="svhn has no preset of its own and runs preset "
                                         "'cifar10' \\(untuned\\), but netinv/presets has no"):
        one_vs_rest.plan(root)


@pytest.fixture(scope="module")
def ran(root: Path, cache: Path) -> Path:
    """``results.py ovr`` with MNIST and SVHN as ID, seed 0, tiny; the stand-in ``cifar10``
    preset (SVHN's fallback) is the MNIST preset."""
    out = root.parent / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PRESETS, "cifar10", {**get_preset("mnist"), "data/id": "cifar10"})
        assert results.main(["ovr", "--data-root", str(root), "--only", "mnist,svhn",
                             "--seeds", "0", "--results-dir", str(out), *SETS]) == 0
    return out


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ovr_writes_one_file_per_id_set_and_seed(ran: Path) -> None:
    assert sorted(p.name for p in ran.iterdir()) == ["mnist-s0.jsonl", "svhn-s0.jsonl"]
    mnist, svhn = _records(ran / "mnist-s0.jsonl"), _records(ran / "svhn-s0.jsonl")
    assert [r["round"] for r in mnist] == [0, 1]
    assert (mnist[-1]["preset"], mnist[-1]["preset_tuned"]) == ("mnist", True)
    assert (svhn[-1]["preset"], svhn[-1]["preset_tuned"]) == ("cifar10", False)
    assert svhn[-1]["config"]["data/id"] == "svhn"
    assert svhn[-1]["config"]["data/ood"] == ["mnist", "cifar100"]
    assert {row["ood_set"] for row in mnist[-1]["ood"]} == {"svhn", "cifar100"}
    assert mnist[-1]["overrides"]["classifier/width"] == "8"  # what --set changed, as given
    assert mnist[-1]["config"]["classifier/width"] == 8


def _table(lines: list[str], title: str) -> dict[str, list[str]]:
    """The rows of the matrix under ``title``: first cell -> all cells."""
    table = {}
    for line in lines[lines.index(title) + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0]] = cells
    return table


def _val_best(record: dict) -> str:
    means = {}
    for row in record["ood"]:
        if row["split"] == "val":
            means.setdefault(row["score"], []).append(row["auroc"])
    return max(means, key=lambda s: sum(means[s]) / len(means[s]))


def _test_value(record: dict, ood: str, score: str, metric: str) -> float:
    return next(row[metric] for row in record["ood"]
                if (row["ood_set"], row["score"], row["split"]) == (ood, score, "test"))


def test_the_page_matrix_shows_the_records_values(ran: Path) -> None:
    ovr_page = load("ovr_page")
    lines = ovr_page.ovr_section(ran)
    auroc = _table(lines, "### AUROC, test")
    fpr = _table(lines, "### FPR95 (ID+), test")
    header = auroc["ID set"]
    col = {name: header.index(label) for name, label in (
        ("mnist", "MNIST"), ("fashionmnist", "FashionMNIST"), ("svhn", "SVHN"),
        ("cifar100", "CIFAR-100"), ("near", "near"), ("far", "far"))}
    for id_set, label, others in (("mnist", "MNIST", ("svhn", "cifar100")),
                                  ("svhn", "SVHN", ("mnist", "cifar100"))):
        record = _records(ran / f"{id_set}-s0.jsonl")[-1]
        score = _val_best(record)
        row = auroc[label]
        assert row[header.index("score")] == score
        assert row[header.index("seeds")] == "0"
        assert row[header.index("ID test acc")] == f"{100 * record['id_test_accuracy']:.2f}%"
        assert row[col[id_set]] == "–" and row[col["fashionmnist"]] == "–"  # self; absent
        for ood in others:
            assert row[col[ood]] == f"{_test_value(record, ood, score, 'auroc'):.4f}"
            assert fpr[label][fpr["ID set"].index(header[col[ood]])] == \
                f"{_test_value(record, ood, score, 'fpr95'):.4f}"
    # MNIST as ID: SVHN and CIFAR-100 are both far; SVHN as ID: CIFAR-100 near, MNIST far
    mnist = _records(ran / "mnist-s0.jsonl")[-1]
    score = _val_best(mnist)
    far = (_test_value(mnist, "svhn", score, "auroc")
           + _test_value(mnist, "cifar100", score, "auroc")) / 2
    assert auroc["MNIST"][col["near"]] == "–" and auroc["MNIST"][col["far"]] == f"{far:.4f}"
    assert auroc["SVHN"][header.index("preset")] == "`cifar10` (untuned), 1 round"
    # the seed project's row sits under MNIST, its far mean over our MNIST row's sets
    names = [line.split("|")[1].strip() for line in lines if line.startswith("| ")]
    assert names[names.index("MNIST") + 1] == "seed project (MNIST, UE)"
    seed = auroc["seed project (MNIST, UE)"]
    assert seed[col["svhn"]] == "0.8381" and seed[col["mnist"]] == "–"
    assert seed[col["far"]] == f"{(0.8381 + 0.9626) / 2:.4f}"
    text = " ".join(lines)
    assert "Untuned: SVHN as ID ran preset `cifar10`" in text
    assert "every row ran with `--set` data/train_limit=100, " in text
    assert "Not run as ID: FashionMNIST, CIFAR-10 (JPEG), CIFAR-100, TinyImageNet-200" in text


def test_a_row_whose_seeds_ran_different_configs_says_so(ran: Path, tmp_path: Path) -> None:
    ovr_page = load("ovr_page")
    records = _records(ran / "mnist-s0.jsonl")
    seed1 = [{**r, "config": {**r["config"], "rounds/seed": 1, "inversion/steps": 2}}
             for r in records]
    for seed, recs in ((0, records), (1, seed1)):
        (tmp_path / f"mnist-s{seed}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in recs))
    text = " ".join(ovr_page.ovr_section(tmp_path))
    assert ("MNIST as ID: not one config over its seeds; seeds differ in `inversion/steps` "
            "(s0 3, s1 2)") in text
    assert "not one config" not in " ".join(ovr_page.ovr_section(ran))


def test_no_records_say_how_to_make_them(tmp_path: Path) -> None:
    lines = load("ovr_page").ovr_section(tmp_path / "none")
    assert any("Not run yet: `OMP_NUM_THREADS=1 .venv/bin/python scripts/results.py ovr "
               "--data-root ../shared/data`" in line for line in lines)


def test_finished_files_are_skipped_and_overwrite_reruns(
        ran: Path, root: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(PRESETS, "cifar10", {**get_preset("mnist"), "data/id": "cifar10"})
    before = {p.name: p.stat().st_mtime_ns for p in ran.iterdir()}
    argv = ["ovr", "--data-root", str(root), "--seeds", "0", "--results-dir", str(ran), *SETS]
    assert results.main([*argv, "--only", "mnist,svhn"]) == 0
    assert "svhn-s0.jsonl exists, skipped" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in ran.iterdir()} == before
    # a file made before the config changed is kept, and the skip says what changed
    assert results.main([*argv, "--only", "svhn", "--set", "inversion/steps=2"]) == 0
    assert ("svhn-s0.jsonl exists, made with a config that differs from today's in "
            "inversion/steps, skipped") in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in ran.iterdir()} == before
    assert results.main([*argv, "--only", "svhn", "--overwrite"]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in ran.iterdir()}
    assert after["mnist-s0.jsonl"] == before["mnist-s0.jsonl"]
    assert after["svhn-s0.jsonl"] != before["svhn-s0.jsonl"]
    assert sorted(after) == ["mnist-s0.jsonl", "svhn-s0.jsonl"]  # no partial file left


def test_download_fetches_svhn_into_the_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             cache: Path) -> None:
    served = tmp_path / "served"
    for split in ("train", "test"):
        write_svhn(served, split, n=20, seed=5)
    with http_server(served / "svhn") as url:
        monkeypatch.setattr(tvd.SVHN, "split_list", {
            split: [f"{url}{split}_32x32.mat", f"{split}_32x32.mat",
                    hashlib.md5((served / "svhn" / f"{split}_32x32.mat").read_bytes()
                                ).hexdigest()]
            for split in ("train", "test")})
        one_vs_rest.download(["svhn"], tmp_path / "data")
    assert one_vs_rest.discover(tmp_path / "data")["svhn"] == ("train", "test")


@pytest.mark.parametrize("args, message", [
    (["--only", "mnist,imagenet"], "`--only` takes names from mnist, fashionmnist, cifar10, "
                                   "svhn, cifar100, tinyimagenet, got only='imagenet'."),
    (["--only", "fashionmnist"], "got fashionmnist with splits none; looked at: "),
    (["--seeds", "0,x"], "`--seeds` must be distinct integers >= 0 separated by commas, e.g. "
                         "0,1,2, got seeds='0,x'."),
    (["--seeds", "1,1"], "got seeds='1,1'"),
    (["--seeds", "-1"], "got seeds='-1'"),
    (["--set", "data/ood=mnist"], "`--set` must not name data/id, data/ood"),
    (["--set", "classifier/widht=8"], "classifier/widht"),
    (["--set", "classifier/width=-3"], "classifier/width"),
    (["--download", "svhn,imagenet"], "`--download` takes names from"),
    (["mnist"], "ovr takes no ID set"),
])
def test_bad_ovr_input_is_one_error_line_before_any_run(
        args: list[str], message: str, root: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    argv = ["ovr", *args, "--data-root", str(root), "--results-dir", str(out)]
    assert results.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not out.exists()


def test_ovr_options_are_refused_by_the_other_commands(capsys: pytest.CaptureFixture) -> None:
    assert results.main(["run", "mnist", "--seeds", "0", "--set", "rounds/count=1"]) == 2
    assert capsys.readouterr().err == ("error: --seeds, --set: options of ovr only, got "
                                       "command=run.\n")


def test_a_cell_says_when_some_seeds_lack_the_set() -> None:
    ovr_page = load("ovr_page")
    assert ovr_page.cell_text([0.9, 0.7], 2) == "0.8000 ± 0.1414"
    assert ovr_page.cell_text([0.9], 2) == "0.9000 (1 of 2 seeds)"
    assert ovr_page.cell_text([], 2) == "–"


def test_a_run_equal_to_the_pages_preset_run_reuses_its_records(
        ran: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """The results page's preset-s<seed> run of an ID set whose OOD sets are all the others is
    the one-vs-rest run: its records are copied, not computed again; any other config runs."""
    monkeypatch.setitem(PRESETS, "cifar10", {**get_preset("mnist"), "data/id": "cifar10"})
    page_run = [{**{k: v for k, v in r.items() if k not in ("preset", "preset_tuned",
                                                             "overrides")},
                 "run": "preset-s0",  # chunked as the page's runs before session 14 were
                 "config": {**r["config"], "data/download": True,
                            "rounds/eval_batch_size": 2048}}
                for r in _records(ran / "mnist-s0.jsonl")]
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "preset-s0.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in page_run))
    out = tmp_path / "one-vs-rest"
    argv = ["ovr", "--data-root", str(root), "--seeds", "0", "--only", "mnist",
            "--results-dir", str(out)]
    assert results.main([*argv, *SETS]) == 0
    assert "its records reused (2 rounds)" in capsys.readouterr().out
    reused = _records(out / "mnist-s0.jsonl")
    assert [r["reused_from"] for r in reused] == ["mnist/preset-s0.jsonl"] * 2
    assert [r["ood"] for r in reused] == [r["ood"] for r in page_run]
    assert reused[-1]["preset"] == "mnist" and reused[-1]["run"] == "mnist-s0"
    # one setting differs from the page's run: computed, not reused
    assert results.main([*argv, *SETS, "--set", "inversion/steps=2", "--overwrite"]) == 0
    assert "reused" not in capsys.readouterr().out
    assert "reused_from" not in _records(out / "mnist-s0.jsonl")[-1]
