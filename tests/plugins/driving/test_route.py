"""Lane-level A*: optimal against Dijkstra, legal turn lanes, the fastest (not shortest) road."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from torchsuite.plugins.driving.sim.road import (
    INTERSECTION_RADIUS,
    TURN_LEFT,
    TURN_RIGHT,
    Edge,
    Town,
    make_town,
    turn_kind,
)
from torchsuite.plugins.driving.sim.route import astar_route, build_path


def _straight(p0: tuple[float, float], p1: tuple[float, float]) -> np.ndarray:
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    u = (b - a) / np.linalg.norm(b - a)
    a, b = a + u * INTERSECTION_RADIUS, b - u * INTERSECTION_RADIUS
    n = int(np.linalg.norm(b - a))
    return a + np.linspace(0, 1, n + 1)[:, None] * (b - a)


def _detour_town(direct_limit: float) -> Town:
    """West -> 0 -> 1 -> East directly (limit ``direct_limit``) or round 0 -> 2 -> 3 -> 1."""
    nodes = np.array([[0, 0], [200, 0], [0, 200], [200, 200], [-200, 0], [400, 0]], float)
    spec = [(4, 0, 15.0), (0, 1, direct_limit), (0, 2, 20.0), (2, 3, 20.0), (3, 1, 20.0),
            (1, 5, 15.0)]
    edges = [Edge(i, a, b, _straight(nodes[a], nodes[b]), 2, lim)
             for i, (a, b, lim) in enumerate(spec)]
    return Town(nodes, edges)


def test_fastest_route_takes_the_detour_when_the_direct_road_is_slow() -> None:
    slow = astar_route(_detour_town(2.0), (0, 1), 5)
    fast = astar_route(_detour_town(20.0), (0, 1), 5)
    assert slow is not None and fast is not None
    assert slow.edges == [0, 2, 3, 4, 5]
    assert fast.edges == [0, 1, 5]
    assert fast.cost < slow.cost


def test_turns_are_taken_from_the_proper_lane() -> None:
    town = _detour_town(2.0)
    route = astar_route(town, (0, 1), 5)
    assert route is not None
    lanes = route.exit_lanes()
    for k in range(len(route.edges) - 1):
        a, b = town.edges[route.edges[k]], town.edges[route.edges[k + 1]]
        kind = turn_kind(a, b)
        if kind == TURN_LEFT:
            assert lanes[k] == 0, "left turns leave from the divider lane"
        elif kind == TURN_RIGHT:
            assert lanes[k] == a.lanes - 1, "right turns leave from the kerb lane"
    # Start in the kerb lane (1); the first turn is left, so the route changes lane once.
    assert route.states[0] == (0, 1) and route.states[1] == (0, 0)


@pytest.mark.parametrize("seed", [0, 5])
def test_astar_cost_equals_dijkstra_on_a_small_town(seed: int) -> None:
    town = make_town(seed, (3, 3))
    rng = np.random.default_rng(seed)
    n = len(town.edges)
    pairs = [(int(a), int(b)) for a, b in rng.choice(n, (25, 2)) if a != b]
    for (a, b), lane in itertools.product(pairs, (0, 1)):
        fast = astar_route(town, (a, lane), b)
        ref = astar_route(town, (a, lane), b, use_heuristic=False)
        assert (fast is None) == (ref is None)
        if fast is not None and ref is not None:
            assert fast.cost == pytest.approx(ref.cost, abs=1e-9)
            assert fast.edges[0] == a and fast.edges[-1] == b
            # Consecutive edges really connect.
            for e1, e2 in itertools.pairwise(fast.edges):
                assert town.edges[e1].dst == town.edges[e2].src


def test_unreachable_goal_gives_none() -> None:
    town = _detour_town(20.0)
    assert astar_route(town, (5, 0), 0) is None  # nothing leaves the east end


def test_path_is_continuous_and_follows_the_route() -> None:
    town = _detour_town(2.0)
    route = astar_route(town, (0, 1), 5)
    assert route is not None
    path = build_path(town, route)
    steps = np.linalg.norm(np.diff(path.xy, axis=0), axis=1)
    assert steps.max() < 2 * path.ds  # no jumps
    assert np.allclose(path.xy[0], town.edges[0].points[0], atol=1e-6)
    assert path.length > 3 * 180  # goes round the block
    # Frenet round trip.
    s = np.array([10.0, 250.0, 500.0])
    xy, _ = path.to_world(s, np.array([-1.75, -5.25, 0.0]))
    for k in range(3):
        s_k, d_k = path.project(xy[k], float(s[k]))
        assert abs(s_k - s[k]) < 0.5 and abs(d_k - [-1.75, -5.25, 0.0][k]) < 0.3
    # A car that turned round behind the start projects onto the first sample (s < 0),
    # even when its last s is far behind the path (an empty search window before).
    behind = path.xy[0] - 8.0 * (path.xy[1] - path.xy[0]) / path.ds
    for hint in (-1.75, -20.0):
        s_b, _ = path.project(behind, hint, window=1.0, ahead=1.0)
        assert s_b == pytest.approx(-8.0, abs=0.1)
