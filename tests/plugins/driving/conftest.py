"""Small worlds for the driving tests: a single chosen vehicle on a short route."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torchsuite.plugins.driving.sim.world import (
    KIND_MOVING,
    KIND_PARKED,
    Scenario,
    ScenarioConfig,
    make_scenario,
)


def place_vehicles(sc: Scenario, s: list[float], d: list[float], v: list[float],
                   kind: list[int] | None = None, length: float = 4.5,
                   width: float = 1.8) -> Scenario:
    """Replace a scenario's traffic by the given vehicles (Frenet s/d on the route)."""
    n = len(s)
    lane = sc.path.lane_of(np.asarray(d, dtype=np.float64))
    sc.traffic = {
        "s": np.asarray(s, dtype=np.float64),
        "d": np.asarray(d, dtype=np.float64),
        "lane": np.asarray(lane, dtype=np.int64),
        "v": np.asarray(v, dtype=np.float64),
        "v0": np.asarray(v, dtype=np.float64),
        "a": np.zeros(n),
        "length": np.full(n, length),
        "width": np.full(n, width),
        "kind": np.asarray(kind if kind is not None else [KIND_MOVING] * n),
        "forced_accel": np.full(n, np.nan),
    }
    return sc


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Small models on a shared 2-core machine: one thread avoids oversubscription stalls."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def place() -> Callable[..., Scenario]:
    """:func:`place_vehicles` (a fixture: test modules cannot import a conftest)."""
    return place_vehicles


@pytest.fixture
def empty_scenario() -> Scenario:
    """A small town, a route of >= 150 m, no traffic."""
    cfg = ScenarioConfig(grid=(3, 3), traffic=0, parked=0, slow=0, min_route=150.0)
    return make_scenario(3, cfg)


@pytest.fixture
def parked_ahead(empty_scenario: Scenario) -> Callable[..., Scenario]:
    """``parked_ahead(ahead, lane=None)``: the empty scenario with one car parked ``ahead``
    metres in front of the ego, in ``lane`` (default the kerb lane; "route" = the lane the
    route wants there), shifted 0.6 m towards the kerb as the simulator parks them; the ego
    starts in that lane."""

    def make(ahead: float, lane: int | str | None = None) -> Scenario:
        sc = empty_scenario
        s = sc.ego_s + ahead
        if lane == "route":
            lane = int(sc.path.at(s, "route_lane"))
        lane = sc.path.lanes - 1 if lane is None else int(lane)
        place_vehicles(sc, [s], [float(sc.path.lane_center(lane)) - 0.6], [0.0],
                       kind=[KIND_PARKED])
        sc.ego_lane = lane
        return sc

    return make
