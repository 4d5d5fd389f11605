"""The driving task end to end on a tiny data set: prepare -> train -> closed loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchsuite.core import ConfigError, DataError, resolve_config
from torchsuite.core.data import ShardedDataset, check_dataset, group_hash, read_manifest
from torchsuite.core.data.preprocess import load_labels
from torchsuite.core.train import fit
from torchsuite.plugins.driving.closed_loop import run_scenario
from torchsuite.plugins.driving.drives import maneuver_ids, save_drive
from torchsuite.plugins.driving.policy import LearnedPolicy, load_planner
from torchsuite.plugins.driving.sim.world import make_scenario
from torchsuite.plugins.driving.task import DrivingConfig, DrivingTask

TINY = [
    "data.drives=6", "data.target_drives=1", "data.traffic=3", "data.max_seconds=4.95",
    "data.record_every=5", "data.min_route=120", "model.width=16",
    "train.max_steps=3", "train.batch_size=8", "train.eval_every=0", "train.log_every=1",
    "train.progress=off", "train.tensorboard=false", "optim.warmup_steps=0",
]


def _task(tmp: Path, *extra: str) -> DrivingTask:
    cfg = resolve_config(DrivingConfig, overrides=[f'data.dir="{tmp / "data"}"', *TINY, *extra])
    return DrivingTask(cfg)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> DrivingTask:
    task = _task(tmp_path_factory.mktemp("driving"))
    task.prepare(None)
    return task


def test_prepare_splits_by_drive_exactly_once(prepared: DrivingTask) -> None:
    manifest = read_manifest(prepared.data_dir)
    assert "train" in manifest.splits and "target" in manifest.splits
    report = check_dataset(prepared.data_dir)
    assert report.ok, str(report)  # no drive straddles two splits
    salt = prepared.cfg.data.salt
    seen: dict[int, str] = {}
    total = 0
    for split in manifest.splits:
        ds = ShardedDataset(prepared.data_dir, split)
        for g in np.unique(ds.group_hashes()):
            assert g not in seen, "a drive in two splits"
            seen[int(g)] = split
        total += len(ds)
    # Every drive (6 in town 0 + 1 in the target town) is there, 4.95 s at 2 Hz = 10 frames each.
    assert total == 7 * 10
    assert seen[group_hash("town1-drive0", salt)] == "target"
    assert sum(1 for s in seen.values() if s == "target") == 1


def test_records_hold_sensors_and_labels(prepared: DrivingTask) -> None:
    rec = prepared.datasets()["train"][0]
    assert rec["camera"].dtype == torch.uint8 and rec["camera"].shape == (3, 64, 64)
    assert rec["lidar"].shape == (360,) and rec["radar"].shape == (8, 4)
    assert rec["waypoints"].shape == (6, 2) and rec["target_speed"].ndim == 0


def test_normalization_stats_are_those_of_the_training_frames(prepared: DrivingTask) -> None:
    train = prepared.datasets()["train"]
    imu = np.stack([np.asarray(train[i]["imu"], dtype=np.float64) for i in range(len(train))])
    route = np.stack([np.asarray(train[i]["route"], dtype=np.float64)
                      for i in range(len(train))])
    norm = prepared.norm_stats()
    np.testing.assert_allclose(norm["imu_mean"], imu.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(norm["imu_std"], imu.std(0, ddof=1) + 1e-3, rtol=1e-6)
    np.testing.assert_allclose(norm["route_mean"], route.mean(0), rtol=1e-6, atol=1e-9)
    model = prepared.build_model()
    assert torch.equal(model.imu_mean, torch.tensor(norm["imu_mean"], dtype=torch.float32))


def test_maneuver_classes_come_from_the_labels() -> None:
    wp = torch.zeros(4, 6, 2)
    wp[1, -1, 1], wp[2, -1, 1], wp[3, -1, 1] = 3.0, -3.0, 3.0
    accel = torch.tensor([0.0, 0.0, 0.0, -2.0])
    assert maneuver_ids(wp, accel).tolist() == [0, 2, 3, 1]  # cruise, left, right, brake


def test_balanced_loss_gives_each_maneuver_an_equal_share(prepared: DrivingTask) -> None:
    train = prepared.datasets()["train"]
    labels = load_labels(prepared.data_dir, "train", "maneuver")
    batch = prepared.collate([train[i] for i in range(len(train))])
    assert labels.tolist() == maneuver_ids(batch["waypoints"].float(),
                                           batch["accel"].float()).tolist()
    w = prepared.maneuver_weights()
    present = np.bincount(labels, minlength=len(w)) > 0
    shares = np.bincount(labels, weights=w[labels].numpy(), minlength=len(w))[present]
    np.testing.assert_allclose(shares / shares.sum(), 1 / present.sum(), rtol=1e-5)
    model = prepared.build_model()
    torch.manual_seed(0)
    plain = prepared._loss(model, batch).loss
    torch.manual_seed(0)
    balanced = prepared._loss(model, batch, balanced=True).loss
    assert torch.isfinite(balanced) and not torch.isclose(plain, balanced)


def test_prepare_refuses_to_overwrite(prepared: DrivingTask) -> None:
    with pytest.raises(DataError, match="already holds a data set"):
        prepared.prepare(None)


def test_train_then_drive_one_closed_loop_scenario(prepared: DrivingTask, tmp_path: Path) -> None:
    result = fit(prepared, tmp_path / "run")
    assert np.isfinite(result.dev_metrics["dev.loss"])
    model = load_planner(prepared, tmp_path / "run")
    wp, speed, accel = model(*prepared.example_inputs())
    assert wp.shape == (1, 6, 2) and speed.shape == (1,) and accel.shape == (1,)
    sc = make_scenario(prepared.cfg.eval.seed_offset, prepared.scenario_config())
    res = run_scenario(sc, LearnedPolicy(model), prepared.sensor_config(), max_steps=15)
    assert 0.0 <= res.completion <= 1.0 and len(res.jerks) == 15
    # Ablation zeroes one sensor: a different plan from the same input.
    obs = {k: v.numpy() for k, v in zip(("camera", "lidar", "radar", "imu", "route"),
                                         prepared.example_inputs())}
    obs["camera"] = np.full_like(obs["camera"], 200)
    full = LearnedPolicy(model).act(None, {k: v[0] for k, v in obs.items()})  # type: ignore[arg-type]
    blind = LearnedPolicy(model, drop=("camera",)).act(None, {k: v[0] for k, v in obs.items()})  # type: ignore[arg-type]
    assert not np.allclose(full.waypoints, blind.waypoints)


def test_dagger_prepare_takes_turns_between_expert_and_each_listed_run(
    prepared: DrivingTask, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchsuite.core import write_run_config

    runs = []
    for width in (16, 8):  # two iterations with different architectures
        task = _task(prepared.data_dir.parent, f"model.width={width}")
        run = tmp_path / f"w{width}"
        fit(task, run)
        write_run_config(run, task.cfg, task.name)
        runs.append(str(run))
    dagger = _task(tmp_path / "agg", "data.drives=3", "data.target_drives=0",
                   f'data.dagger_run="{",".join(runs)}"')
    dagger.prepare(None)
    drivers = [line.partition("driven by ")[2].rstrip(")")
               for line in capsys.readouterr().out.splitlines() if line.startswith("drive ")]
    # Drive k is driven by [expert, run 1, run 2][k % 3]; each run with its own width.
    assert drivers == ["", runs[0], runs[1]]
    assert read_manifest(dagger.data_dir).splits


def test_extra_train_sets_aggregate_iterations(prepared: DrivingTask, tmp_path: Path) -> None:
    more = _task(tmp_path / "iter2", "data.drives=2", "data.target_drives=0",
                 "data.first_drive=50")
    more.prepare(None)
    drive_ids = {int(g) for g in ShardedDataset(more.data_dir, "train").group_hashes()}
    first_ids = {int(g) for g in ShardedDataset(prepared.data_dir, "train").group_hashes()}
    assert not drive_ids & first_ids  # new scenarios (seeds 50, 51), not the first set's
    both = _task(prepared.data_dir.parent, f'data.extra_train=["{more.data_dir}"]')
    n = len(prepared.datasets()["train"]) + len(more.datasets()["train"])
    assert len(both.datasets()["train"]) == n
    assert len(both.datasets()["dev"]) == len(prepared.datasets()["dev"])
    assert both.maneuver_weights().shape == (4,)
    assert np.isfinite(fit(both, tmp_path / "run").dev_metrics["dev.loss"])
    bad = _task(prepared.data_dir.parent, f'data.extra_train=["{tmp_path / "none"}"]')
    with pytest.raises(DataError, match="none' holds no prepared driving train split"):
        bad.datasets()
    with pytest.raises(ConfigError, match="held-out evaluation scenarios"):
        _task(tmp_path, "data.first_drive=99998")


def test_prepare_from_user_drives_and_clear_errors(tmp_path: Path) -> None:
    src = _task(tmp_path / "sim", "data.drives=2", "data.target_drives=0")
    drives = []
    for gid, _, drive in src._drives(None):
        drives.append(drive)
        save_drive(tmp_path / "logs" / f"{gid}.npz", drive)
    task = _task(tmp_path / "user", 'data.salt="s3"', 'data.target_pattern="*drive1"')
    task.prepare(tmp_path / "logs")
    manifest = read_manifest(task.data_dir)
    assert manifest.splits["target"].num_records == 10  # drive1 matched the pattern
    bad = dict(drives[0])
    bad.pop("radar")
    save_drive(tmp_path / "broken" / "x.npz", bad)
    with pytest.raises(DataError, match=r"x\.npz: missing field\(s\) \['radar'\]"):
        _task(tmp_path / "user2").prepare(tmp_path / "broken")
    assert not (tmp_path / "user2" / "data" / "manifest.json").exists()
    with pytest.raises(DataError, match="no such file"):
        _task(tmp_path / "user3").prepare(tmp_path / "nowhere")


@pytest.mark.slow
def test_cli_train_evaluate_replay(prepared: DrivingTask, workdir: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image
    from torchsuite.core.cli import main

    data = f'data.dir="{prepared.data_dir}"'
    assert main(["train", "driving", data, *TINY, "--name", "t"]) == 0
    run = workdir / "runs" / "driving" / "t"
    assert main(["drive", "evaluate", "--from", "t", "--scenarios", "2",
                 "--ablation-scenarios", "1", "eval.max_seconds=1.5"]) == 0
    out = capsys.readouterr().out
    assert "| learned |" in out and "| expert |" in out and "| baseline |" in out
    assert "| learned+safety |" in out
    report = json.loads((run / "samples" / "drive_eval.json").read_text())
    assert set(report["rows"]) == {"learned", "learned+safety", "expert", "baseline",
                                   "learned -camera",
                                   "learned -lidar", "learned -radar", "learned -imu"}
    assert len(report["scores"]["expert"]) == 2 and len(report["scores"]["learned -imu"]) == 1
    assert (run / "samples" / "drive_eval_metrics.png").stat().st_size > 1000
    # Another call on the same scenarios redoes its own rows and keeps the others; worker
    # processes drive the same scenarios to the same results ...
    short = ["--no-ablations", "eval.max_seconds=1.5"]
    assert main(["drive", "evaluate", "--from", "t", "--scenarios", "2", "--policies",
                 "expert,learned+safety", "--workers", "2", *short]) == 0
    out = capsys.readouterr().out
    assert "kept learned, baseline" in out and "learned/expert" in out
    again = json.loads((run / "samples" / "drive_eval.json").read_text())
    assert set(again["rows"]) == set(report["rows"])
    assert again["rows"]["baseline"] == report["rows"]["baseline"]
    assert again["rows"]["expert"] == report["rows"]["expert"]
    assert len(again["scores"]["learned+safety"]) == 2
    # ... and one on other scenarios moves the earlier report aside.
    assert main(["drive", "evaluate", "--from", "t", "--scenarios", "1", "--policies",
                 "baseline", *short]) == 0
    assert "moved the earlier evaluation" in capsys.readouterr().out
    assert set(json.loads((run / "samples" / "drive_eval.json").read_text())["rows"]) == {
        "baseline"}
    aside = json.loads((run / "samples" / "drive_eval.earlier-1.json").read_text())
    assert set(aside["rows"]) == set(report["rows"])
    # Validation scenarios under their own report name leave the held-out report alone.
    held_out = (run / "samples" / "drive_eval.json").read_text()
    assert main(["drive", "evaluate", "--from", "t", "--scenarios", "1", "--policies",
                 "expert", "--report", "drive_val", "eval.seed_offset=90000", *short]) == 0
    assert (run / "samples" / "drive_eval.json").read_text() == held_out
    # A report made under the simulator's earlier rules is not merged with new rows.
    val = run / "samples" / "drive_val.json"
    stale = json.loads(val.read_text())
    stale["setting"]["rules"] = stale["setting"]["rules"] - 1
    val.write_text(json.dumps(stale))
    assert main(["drive", "evaluate", "--from", "t", "--scenarios", "1", "--policies",
                 "baseline", "--report", "drive_val", "eval.seed_offset=90000", *short]) == 0
    assert "moved the earlier evaluation" in capsys.readouterr().out
    assert set(json.loads(val.read_text())["rows"]) == {"baseline"}
    val = json.loads((run / "samples" / "drive_val.json").read_text())
    assert val["seeds"] == [90000, 90000] and (run / "samples" / "drive_val_metrics.png").exists()
    assert main(["drive", "evaluate", "--from", "t", "--report", "../x"]) == 2
    assert "--report '../x': give a plain file name stem" in capsys.readouterr().err
    # `suite driving ...` is the same verb.
    assert main(["driving", "replay", "--from", "t", "--policy", "expert",
                 "eval.max_seconds=1"]) == 0
    gif = Image.open(run / "samples" / "replay_expert_0.gif")
    assert gif.n_frames == 5  # 10 steps, every 2nd
    assert main(["drive", "replay", "--from", "t", "--policy", "learned+safety",
                 "eval.max_seconds=1"]) == 0
    assert Image.open(run / "samples" / "replay_learned_safety_0.gif").n_frames == 5
    # A user mistake is one clear line, exit code 2.
    code = main(["prepare", "driving", "--source", str(workdir / "nope"),
                 f'data.dir="{workdir / "new"}"'])
    assert code == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["drive", "evaluate", "--from", "t", "--workers", "0"]) == 2
    assert "--workers must be >= 1, got 0" in capsys.readouterr().err


def test_data_prepared_without_the_earlier_sweep_is_refused_by_name(
    prepared: DrivingTask, tmp_path: Path
) -> None:
    from torchsuite.core.data import DatasetWriter

    old = tmp_path / "old"
    with DatasetWriter(old, salt="x") as w:
        for rec in ShardedDataset(prepared.data_dir, "train"):
            w.add({k: v for k, v in rec.items() if k not in ("lidar_prev", "prev_pose")},
                  split="train", group="d0")
    task = _task(tmp_path, f'data.extra_train=["{old}"]')
    task.cfg.data.dir = prepared.data_dir
    with pytest.raises(DataError, match=r"old: records lack \['lidar_prev', 'prev_pose'\]"):
        task.datasets()
    plain = _task(tmp_path, f'data.extra_train=["{old}"]', "model.history=false")
    plain.cfg.data.dir = prepared.data_dir
    assert len(plain.datasets()["train"]) > len(ShardedDataset(prepared.data_dir, "train"))


def test_a_lidar_grid_too_fine_for_the_fusion_is_a_config_error(tmp_path: Path) -> None:
    task = _task(tmp_path, "model.lidar_res=0.25")
    with pytest.raises(ConfigError, match=r"lidar_res=0.25.*1665 tokens, more than its 512"):
        task.build_model()
