"""The simulated world: determinism from a seed, IDM/MOBIL traffic that never collides."""

from __future__ import annotations

import numpy as np
import pytest
from torchsuite.plugins.driving.closed_loop import run_scenario
from torchsuite.plugins.driving.expert import ExpertPolicy, Plan, Tracker
from torchsuite.plugins.driving.sim.world import ScenarioConfig, World, boxes_overlap, make_scenario

SMALL = ScenarioConfig(grid=(3, 3), traffic=8, parked=1, slow=1, min_route=150.0)


def _trace(seed: int, steps: int = 40) -> list[dict[str, np.ndarray]]:
    frames: list[dict[str, np.ndarray]] = []

    def grab(world: World, obs: dict[str, np.ndarray], plan: Plan, accel: float) -> None:
        frames.append({**obs, "traffic_s": world.tr["s"].copy(),
                       "ego": np.array([world.ego.x, world.ego.y, world.ego.v])})

    run_scenario(make_scenario(seed, SMALL), ExpertPolicy(), on_step=grab, max_steps=steps)
    return frames


def test_a_seed_reproduces_the_drive_exactly() -> None:
    a, b, c = _trace(11), _trace(11), _trace(12)
    assert len(a) == len(b) == 40
    for fa, fb in zip(a, b):
        assert fa.keys() == fb.keys()
        for k in fa:
            assert np.array_equal(fa[k], fb[k]), k
    assert not np.array_equal(a[-1]["traffic_s"], c[-1]["traffic_s"][: len(a[-1]["traffic_s"])])


def _overlaps(world: World) -> int:
    tr = world.tr
    ds = np.abs(tr["s"][:, None] - tr["s"][None])
    dd = np.abs(tr["d"][:, None] - tr["d"][None])
    hit = (ds < (tr["length"][:, None] + tr["length"][None]) / 2) & (
        dd < (tr["width"][:, None] + tr["width"][None]) / 2)
    np.fill_diagonal(hit, False)
    return int(hit.sum())


@pytest.mark.parametrize("seed", [0, 3])
def test_idm_mobil_traffic_never_collides(seed: int) -> None:
    """Dense traffic with parked cars and slow leaders, lane changes included."""
    cfg = ScenarioConfig(grid=(3, 3), traffic=20, parked=2, slow=1, min_route=150.0)
    world = World(make_scenario(seed, cfg))
    policy, tracker = ExpertPolicy(), Tracker()
    lanes_seen = set()
    for _ in range(250):
        if world.done:
            break
        plan = policy.act(world, {})
        world.step(*tracker.control(plan, world.ego.v, world.dt))
        assert _overlaps(world) == 0
        lanes_seen.update(world.tr["lane"].tolist())
        moving = world.tr["kind"] == 0
        assert (world.tr["v"][moving] >= 0).all()
    assert not world.collided
    assert lanes_seen == {0, 1}  # traffic uses both lanes


def test_offroad_counts_one_event_per_excursion() -> None:
    cfg = ScenarioConfig(grid=(3, 3), traffic=0, parked=0, slow=0, min_route=150.0)
    world = World(make_scenario(3, cfg))

    def at(d: float, steps: int = 1) -> None:
        for _ in range(steps):
            world.ego.d = d
            world._check()

    at(-1.75, 3)
    assert world.offroad_events == 0
    at(1.0)  # over the centre line
    at(-1.75, 3)  # back briefly, then out again: the same excursion
    at(1.0, 2)
    assert world.offroad_events == 1 and world.offroad
    at(-1.75, 12)  # a while on the road
    at(-8.0)  # off the kerb side
    assert world.offroad_events == 2


def _corners(c: np.ndarray, h: float, length: float, width: float) -> np.ndarray:
    f, left = np.array([np.cos(h), np.sin(h)]), np.array([-np.sin(h), np.cos(h)])
    return np.array([c + f * length / 2 + left * width / 2 * k for k in (1, -1)]
                    + [c - f * length / 2 + left * width / 2 * k for k in (-1, 1)])


def _inside(p: np.ndarray, c: np.ndarray, h: float, length: float, width: float) -> np.ndarray:
    r = p - c
    fwd = r @ np.array([np.cos(h), np.sin(h)])
    side = r @ np.array([-np.sin(h), np.cos(h)])
    return (np.abs(fwd) <= length / 2) & (np.abs(side) <= width / 2)


def test_boxes_overlap_agrees_with_a_dense_point_check() -> None:
    """Random oriented boxes: the separating-axis answer matches whether points sampled
    densely over one box (edges included) fall in the other, away from near-touches."""
    rng = np.random.default_rng(0)
    checked = {True: 0, False: 0}
    grid = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 41), np.linspace(-0.5, 0.5, 41)), -1)
    for _ in range(300):
        ca, cb = rng.uniform(-3, 3, 2), rng.uniform(-3, 3, 2)
        ha, hb = rng.uniform(-np.pi, np.pi, 2)
        la, wa, lb, wb = rng.uniform(1.0, 5.0, 4)
        got = boxes_overlap(ca, ha, (la / 2, wa / 2), cb[None], np.array([hb]),
                            np.array([lb]), np.array([wb]))[0]
        fa = np.array([np.cos(ha), np.sin(ha)])
        la_ = np.array([-np.sin(ha), np.cos(ha)])
        pts = ca + grid[..., :1] * la * fa + grid[..., 1:] * wa * la_  # [41, 41, 2]
        # Margin: the same check with B grown and shrunk by 5 cm must agree.
        big = _inside(pts.reshape(-1, 2), cb, hb, lb + 0.1, wb + 0.1).any()
        small = _inside(pts.reshape(-1, 2), cb, hb, lb - 0.1, wb - 0.1).any()
        small |= _inside(_corners(cb, hb, lb - 0.1, wb - 0.1), ca, ha, la, wa).any()
        big |= _inside(_corners(cb, hb, lb + 0.1, wb + 0.1), ca, ha, la, wa).any()
        if big == small:
            assert got == big, (ca, cb, ha, hb, la, wa, lb, wb)
            checked[bool(got)] += 1
    assert checked[True] > 30 and checked[False] > 30


def test_an_angled_ego_collides_by_its_corners_not_its_bounding_box() -> None:
    """Turned 0.3 rad to the left behind a car standing ahead on its right (the pull-out
    round a parked car), the ego's lane-aligned bounding box reaches the car; its real
    front-right corner clears it by about 1 m."""
    other = (np.array([[4.45, -2.2]]), np.zeros(1), np.array([4.5]), np.array([1.8]))
    half = (4.6 / 2, 1.9 / 2)
    # Bounding box at 0.3 rad: x up to 2.48 (> 2.2), y down to -1.59 (< -1.3).
    assert not boxes_overlap(np.array([0.0, 0.0]), 0.3, half, *other)[0]
    assert boxes_overlap(np.array([0.0, -1.2]), 0.3, half, *other)[0]
    assert boxes_overlap(np.array([0.5, -0.5]), -0.3, half, *other)[0]  # turned into it


def test_cars_past_the_end_of_the_route_are_not_hit() -> None:
    """Past the route's end the cars' world positions are clamped to its last point; the
    ego arriving there must not collide with them."""
    world = World(make_scenario(3, SMALL))
    end_s = world.path.length - 3.0
    xy, hd = world.path.to_world(np.array([end_s]), np.array([world.ego.d]))
    world.ego.x, world.ego.y, world.ego.yaw = float(xy[0, 0]), float(xy[0, 1]), float(hd[0])
    world.ego.s = end_s
    world.tr["s"][:] = world.path.length + 40.0
    world.tr["d"][:] = world.ego.d
    world._tw_cache = None
    world._check()
    assert not world.collided
    world.tr["s"][0] = end_s + 1.0  # a car really there is hit
    world._tw_cache = None
    world._check()
    assert world.collided
