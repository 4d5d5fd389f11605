"""Sensor geometry: a box at a known place shows up where it should in every sensor."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from torchsuite.plugins.driving.sim.road import LANE_WIDTH
from torchsuite.plugins.driving.sim.sensors import SensorConfig, Sensors, box_segments, cast_rays
from torchsuite.plugins.driving.sim.world import Scenario, World

CLEAN = SensorConfig(camera_noise=0.0, lidar_noise=0.0, radar_noise=(0.0, 0.0, 0.0),
                     imu_noise=0.0, imu_bias=0.0)


def test_cast_rays_hits_the_near_face_of_a_box() -> None:
    p, q = box_segments(np.array([[10.0, 0.0]]), np.array([0.0]), np.array([4.0]),
                        np.array([2.0]))
    angles = np.array([0.0, np.arctan2(0.5, 8.0), np.pi / 2, np.pi])
    r = cast_rays(np.zeros(2), angles, p, q, 50.0)
    assert r[0] == pytest.approx(8.0)
    assert r[1] == pytest.approx(np.hypot(8.0, 0.5))  # still the rear face, off-centre
    assert r[2] == 50.0 and r[3] == 50.0  # nothing to the side or behind: no return


def _world_with_car_ahead(sc: Scenario, place: Callable[..., Scenario], ahead: float,
                          lateral: float, speed: float) -> World:
    d = float(sc.path.lane_center(sc.ego_lane)) + lateral
    place(sc, [sc.ego_s + ahead], [d], [speed], length=4.0, width=2.0)
    return World(sc)


def _ego_frame(world: World) -> tuple[float, float, float]:
    """Ego-frame x, y of the traffic car's centre and its heading relative to the ego."""
    xy, hd, *_ = world.traffic_world()
    e = world.ego
    rel = xy[0] - np.array([e.x, e.y])
    c, s = np.cos(e.yaw), np.sin(e.yaw)
    return float(rel[0] * c + rel[1] * s), float(-rel[0] * s + rel[1] * c), float(hd[0] - e.yaw)


def test_lidar_sees_a_car_ahead_and_the_road_edge(empty_scenario: Scenario,
                                                  place: Callable[..., Scenario]) -> None:
    world = _world_with_car_ahead(empty_scenario, place, 15.0, 0.0, 5.0)
    x, y, rel_yaw = _ego_frame(world)
    scan = Sensors(CLEAN, 0).lidar(world)
    assert scan.shape == (CLEAN.lidar_rays,)
    az = round(np.degrees(np.arctan2(y, x))) % 360  # 1 ray per degree
    # The ray towards the car's centre meets its rear face, half a length before the centre.
    assert scan[az] == pytest.approx(np.hypot(x, y) - 2.0 / np.cos(rel_yaw), abs=0.15)
    # Rays just past the car's sides see nothing there (the road is open ahead).
    side = round(np.degrees(np.arctan2(y + 3.0, x))) % 360
    assert scan[side] > np.hypot(x, y) + 5
    # Straight left is the carriageway's far edge: lanes * width left of the centre line.
    e = world.ego
    assert scan[90] == pytest.approx(world.path.lanes * LANE_WIDTH - e.d, abs=0.3)


def test_radar_reports_range_azimuth_and_range_rate(empty_scenario: Scenario,
                                                    place: Callable[..., Scenario]) -> None:
    world = _world_with_car_ahead(empty_scenario, place, 20.0, 2.0, 3.0)
    x, y, _ = _ego_frame(world)
    out = Sensors(CLEAN, 0).radar(world)
    assert out.shape == (CLEAN.radar_targets, 4)
    assert out[0, 3] == 1.0 and (out[1:, 3] == 0).all()  # one valid target
    assert out[0, 0] == pytest.approx(np.hypot(x, y), abs=1e-3)
    assert out[0, 1] == pytest.approx(np.arctan2(y, x), abs=1e-4)
    assert out[0, 1] > 0  # 2 m to the left: positive azimuth
    # Closing: the car does 3 m/s, the ego starts at half the speed limit (faster).
    assert out[0, 2] == pytest.approx((3.0 - world.ego.v) * np.cos(np.arctan2(y, x)), abs=0.1)


def test_radar_ignores_targets_outside_its_cone(empty_scenario: Scenario,
                                                place: Callable[..., Scenario]) -> None:
    world = _world_with_car_ahead(empty_scenario, place, -15.0, 0.0, 3.0)  # behind us
    assert (Sensors(CLEAN, 0).radar(world)[:, 3] == 0).all()


def test_camera_draws_the_car_at_its_pixel(empty_scenario: Scenario,
                                           place: Callable[..., Scenario]) -> None:
    world = _world_with_car_ahead(empty_scenario, place, 12.0, 0.0, 5.0)
    x, y, _ = _ego_frame(world)
    img = Sensors(CLEAN, 0).camera(world)
    assert img.dtype == np.uint8 and img.shape == (3, 64, 64)
    row = int(CLEAN.camera_ego_row - x / CLEAN.camera_res)
    col = int(CLEAN.camera_size / 2 - y / CLEAN.camera_res)
    assert img[2, row, col] == 255  # vehicle channel
    assert img[2, row, col + 8] == 0  # 4 m to the right: no car
    assert img[2, CLEAN.camera_ego_row, 32] == 255  # the ego itself
    assert img[0, CLEAN.camera_ego_row, 32] == 255  # standing on the road


def test_imu_measures_speed_and_acceleration(empty_scenario: Scenario) -> None:
    world = World(empty_scenario)
    world.step(1.0, 0.0)
    imu = Sensors(CLEAN, 0).imu(world)
    assert imu[0] == pytest.approx(world.ego.v, abs=0.2)  # speed noise std is 0.05
    assert imu[1] == pytest.approx(1.0, abs=1e-4)  # longitudinal acceleration
    assert abs(imu[3]) < 1e-6  # no steering, no yaw rate


def test_sensor_rate_holds_the_last_measurement(empty_scenario: Scenario) -> None:
    cfg = SensorConfig(lidar_hz=5.0)  # every other 10 Hz step
    world, sensors = World(empty_scenario), Sensors(cfg, 0)
    first = sensors.read(world)["lidar"]
    world.step(0.0, 0.0)
    assert np.array_equal(sensors.read(world)["lidar"], first)  # held
    world.step(0.0, 0.0)
    assert not np.array_equal(sensors.read(world)["lidar"], first)  # new scan (noise)
