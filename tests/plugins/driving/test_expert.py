"""Adaptive cruise and the expert in closed loop: headway, comfort limits, no collisions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from torchsuite.plugins.driving.closed_loop import run_scenario
from torchsuite.plugins.driving.expert import (
    ACC_S0,
    ACC_T,
    COMFORT_DECEL,
    JERK_LIMIT,
    BaselinePolicy,
    ExpertPolicy,
    Tracker,
    acc_accel,
)
from torchsuite.plugins.driving.sim.world import (
    Scenario,
    ScenarioConfig,
    World,
    make_scenario,
)


def _follow(leader_decel: float, until: float, gap0: float = 35.0,
            seconds: float = 50.0) -> np.ndarray:
    """1-D: ACC ego behind a leader that brakes at ``leader_decel`` down to ``until`` m/s."""
    dt, xl, vl, x, v, a_prev = 0.1, gap0 + 4.6, 15.0, 0.0, 15.0, 0.0
    rows = []
    for k in range(int(seconds / dt)):
        if k * dt >= 1.0 and vl > until:
            vl = max(vl - leader_decel * dt, until)
        xl += vl * dt
        gap = xl - x - 4.6
        a, emergency = acc_accel(v, 16.0, gap, vl, a_prev, dt)
        rows.append((gap, v, vl, a, emergency, (a - a_prev) / dt))
        a_prev = a
        v = max(v + a * dt, 0.0)
        x += v * dt
    return np.array(rows)


def test_acc_settles_at_the_time_headway_behind_a_braking_leader() -> None:
    log = _follow(leader_decel=3.0, until=5.0)
    gap, v, _, a, emergency, jerk = log.T
    assert gap.min() > ACC_S0  # never closer than the standstill gap
    assert not emergency.any()  # a 3 m/s^2 stop is handled within comfort
    assert a.min() >= -COMFORT_DECEL - 1e-9
    assert np.abs(jerk[1:]).max() <= JERK_LIMIT + 1e-6
    # Equilibrium of the time-headway law: gap = S0 + v * T at the leader's speed.
    assert v[-1] == pytest.approx(5.0, abs=0.1)
    assert gap[-1] == pytest.approx(ACC_S0 + v[-1] * ACC_T, rel=0.1)


def test_acc_brakes_harder_than_comfort_only_in_an_emergency() -> None:
    # A car cuts in 12 m ahead at our speed and then brakes fully.
    log = _follow(leader_decel=8.0, until=0.0, gap0=12.0)
    gap, _, _, a, emergency, _ = log.T
    assert gap.min() > 0.0  # no collision with a full emergency stop ahead
    hard = a < -COMFORT_DECEL - 1e-9
    assert hard.any(), "an 8 m/s^2 stop needs more than comfort braking"
    assert emergency[hard].all(), "decel beyond 3.5 m/s^2 only when flagged an emergency"


def test_expert_follows_a_braking_leader_in_the_world_without_collision(
    place: Callable[..., Scenario],
) -> None:
    # One lane, so the expert cannot simply overtake: it has to follow.
    cfg = ScenarioConfig(grid=(3, 3), lanes=1, traffic=0, parked=0, slow=0, min_route=150.0)
    sc = make_scenario(3, cfg)
    place(sc, [sc.ego_s + 30.0], [float(sc.path.lane_center(0))], [8.0])
    world = World(sc)
    policy = ExpertPolicy()
    tracker = Tracker()
    gaps = []
    for k in range(300):
        if k == 60:
            world.tr["forced_accel"][:] = -4.0  # the leader brakes to a stop
        plan = policy.act(world, {})
        accel, steer = tracker.control(plan, world.ego.v, world.dt)
        world.step(accel, steer)
        gaps.append(world.tr["s"][0] - world.ego.s - 4.5 / 2 - 4.6 / 2)
        assert not world.collided
    assert world.tr["v"][0] == 0.0 and world.ego.v < 0.5  # both stopped
    assert 1.0 < gaps[-1] < 8.0  # close behind, not touching


def test_expert_beats_the_baseline_around_a_parked_car(
    parked_ahead: Callable[..., Scenario],
) -> None:
    sc = parked_ahead(60.0)
    sc.time_limit = 30.0
    expert = run_scenario(sc, ExpertPolicy(), max_steps=250, sense_every=10**6)
    baseline = run_scenario(sc, BaselinePolicy(), max_steps=250, sense_every=10**6)
    assert expert.collisions_static == 0 and expert.collisions_vehicle == 0
    assert expert.distance_km * 1000 > 100.0  # it got past the parked car
    assert baseline.distance_km < expert.distance_km  # the baseline waits behind it


def test_expert_pulls_out_from_standstill_close_behind_a_parked_car(
    parked_ahead: Callable[..., Scenario],
) -> None:
    # Stopped about where the expert stops behind a parked car (7 m gap) in the kerb lane,
    # nothing in the next lane: it must creep out and pass (it used to wait there until
    # the time limit).
    sc = parked_ahead(11.5)
    sc.ego_v, sc.time_limit = 0.0, 25.0
    res = run_scenario(sc, ExpertPolicy(), sense_every=10**6)
    assert res.collisions_static == 0 and res.collisions_vehicle == 0
    assert res.distance_km * 1000 > 40.0  # well past the parked car
