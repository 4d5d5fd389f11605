"""The on-disk drive format: recording, validation errors, labels, save/load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from torchsuite.core import DataError
from torchsuite.plugins.driving.drives import (
    HISTORY_DT,
    MODEL_INPUTS,
    drive_records,
    load_drive,
    record_drive,
    relative_pose,
    save_drive,
    validate_drive,
)
from torchsuite.plugins.driving.expert import N_WAYPOINTS
from torchsuite.plugins.driving.sim.sensors import SENSOR_SHAPES, SensorConfig
from torchsuite.plugins.driving.sim.world import Scenario, ScenarioConfig, make_scenario


def _synthetic_drive(n: int = 40, speed: float = 10.0, dt: float = 0.2) -> dict[str, np.ndarray]:
    """A user-style logged drive: straight east at constant speed, no expert plan."""
    t = np.arange(n) * dt
    drive = {k: np.zeros((n, *shape), np.float32) for k, shape in SENSOR_SHAPES.items()}
    drive["camera"] = np.zeros((n, *SENSOR_SHAPES["camera"]), np.uint8)
    drive["lidar"][:] = 50.0
    drive["t"] = t
    drive["pose"] = np.stack([speed * t, np.full(n, 3.0), np.zeros(n)], 1)
    drive["speed"] = np.full(n, speed)
    return drive


def test_a_logged_drive_without_plan_gets_labels_from_its_future() -> None:
    drive = _synthetic_drive()
    validate_drive(drive, "synthetic")
    recs = drive_records(drive)
    # 40 frames at 5 Hz = 7.8 s; a full 3 s future exists for the first 40 - 15 frames.
    assert len(recs) == 40 - 15
    wp = recs[0]["waypoints"]
    assert wp.shape == (N_WAYPOINTS, 2)
    assert np.allclose(wp[:, 0], 10.0 * 0.5 * np.arange(1, N_WAYPOINTS + 1), atol=1e-4)
    assert np.allclose(wp[:, 1], 0.0, atol=1e-6)
    assert recs[0]["target_speed"] == pytest.approx(10.0)
    assert recs[0]["accel"] == pytest.approx(0.0)


def test_waypoints_are_in_the_ego_frame() -> None:
    drive = _synthetic_drive()
    drive["pose"][:, 2] = np.pi / 2  # heading north while moving east: the car slides right
    recs = drive_records(drive)
    assert np.allclose(recs[0]["waypoints"][:, 0], 0.0, atol=1e-6)
    assert (recs[0]["waypoints"][:, 1] < 0).all()  # east is to the right (-y) of north


def test_records_carry_the_lidar_sweep_from_history_dt_earlier_and_where_it_was_taken(
) -> None:
    drive = _synthetic_drive()  # 10 m/s east, frames every 0.2 s
    drive["lidar"][:, 0] = np.arange(len(drive["t"]))  # sweep k has 'k' in ray 0
    recs = drive_records(drive)
    back = round(HISTORY_DT / 0.2)
    assert recs[0]["lidar_prev"][0] == 0  # the first frames have only the first sweep
    assert np.allclose(recs[0]["prev_pose"], 0.0)
    assert recs[10]["lidar_prev"][0] == 10 - back
    assert np.allclose(recs[10]["prev_pose"], [-10.0 * back * 0.2, 0.0, 0.0], atol=1e-4)
    assert set(MODEL_INPUTS) <= set(recs[10])


def test_relative_pose_rotates_into_the_current_heading() -> None:
    # now at the origin facing north (+y); the past pose 4 m south facing north-east
    rel = relative_pose(np.array([0.0, -4.0, np.pi / 4]), np.array([0.0, 0.0, np.pi / 2]))
    assert np.allclose(rel, [-4.0, 0.0, -np.pi / 4], atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("lidar"), "missing field(s) ['lidar']"),
        (lambda d: d.update(radar=np.zeros((40, 5, 4), np.float32)), "field 'radar' has shape"),
        (lambda d: d.update(camera=d["camera"].astype(np.float32)), "must be uint8"),
        (lambda d: d["t"].__setitem__(7, d["t"][5]), "timestamps out of order at frame 7"),
        (lambda d: d["imu"].__setitem__((3, 1), np.nan), "field 'imu' has NaN/inf at frame 3"),
        (lambda d: d["lidar"].__setitem__((2, 0), -1.0), "negative range at frame 2"),
        (lambda d: d["radar"].__setitem__((4, 0, 3), 0.5), "frame 4 has [0.0, 0.5]"),
        (lambda d: d.update(plan_waypoints=np.zeros((40, 3, 2))), "field 'plan_waypoints'"),
        (lambda d: d.update(t=d["t"][:1]), "a drive needs at least 2"),
    ],
)
def test_validator_names_the_problem(change, message: str) -> None:  # type: ignore[no-untyped-def]
    drive = _synthetic_drive()
    change(drive)
    with pytest.raises(DataError) as err:
        validate_drive(drive, "drives/mine.npz")
    assert "drives/mine.npz" in str(err.value)
    assert message in str(err.value)


def test_save_load_round_trip_and_no_overwrite(tmp_path: Path) -> None:
    drive = _synthetic_drive()
    path = save_drive(tmp_path / "d.npz", drive)
    back = load_drive(path)
    assert back.keys() == drive.keys()
    for k in drive:
        assert np.array_equal(back[k], drive[k])
    with pytest.raises(DataError, match="already exists"):
        save_drive(path, drive)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read"):
        load_drive(tmp_path / "bad.npz")


def test_recorded_expert_drive_passes_the_validator() -> None:
    sc = make_scenario(1, ScenarioConfig(grid=(3, 3), traffic=4, min_route=150.0))
    sc.time_limit = 7.95  # a short drive: 80 steps of 0.1 s
    drive, result = record_drive(sc, SensorConfig(), every=2, noise=0.5)
    validate_drive(drive, "sim")
    assert len(drive["t"]) == 40 and np.allclose(np.diff(drive["t"]), 0.2)
    assert drive["plan_waypoints"].shape == (40, N_WAYPOINTS, 2)
    recs = drive_records(drive)
    assert len(recs) == 40  # the expert's plan labels every frame
    # The plan points forward along the road.
    assert (recs[10]["waypoints"][:, 0] > 0).all()
    assert result.collisions_vehicle == 0


def test_noise_injection_is_seeded_short_and_bounded() -> None:
    from torchsuite.plugins.driving.drives import SteeringNoise
    from torchsuite.plugins.driving.sim.world import World

    world = World(make_scenario(1, ScenarioConfig(grid=(3, 3), traffic=0, min_route=150.0)))

    def trace(seed: int) -> np.ndarray:
        noise = SteeringNoise(seed, rate=0.5, steer_std=0.06, duration=0.8)
        return np.array([noise(world, 0.0, 0.0) for _ in range(600)])

    a, b = trace(4), trace(4)
    assert np.array_equal(a, b) and not np.array_equal(a, trace(5))
    active = np.abs(a[:, 1]) > 0
    assert 0.05 < active.mean() < 0.6  # impulses, not constant drift
    assert np.abs(a[:, 1]).max() < 0.4  # a nudge, not a swerve


def test_dagger_recording_keeps_expert_labels_while_another_policy_drives(
    parked_ahead: Callable[..., Scenario],
) -> None:
    from torchsuite.plugins.driving.expert import BaselinePolicy

    sc = parked_ahead(40.0)
    sc.time_limit = 11.95
    drive, result = record_drive(sc, SensorConfig(), every=4, driver=BaselinePolicy())
    validate_drive(drive, "dagger")
    # The baseline (no lane changes) stops behind the parked car ...
    assert result.distance_km * 1000 < 40.0 and result.collisions_static == 0
    # ... while the expert's labels for the same states steer round it (left = +y).
    assert drive["plan_waypoints"][:, -1, 1].max() > 1.5
