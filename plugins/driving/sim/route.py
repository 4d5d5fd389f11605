"""Lane-level A* route planning on the road graph and the route corridor it produces.

Search states are ``(edge, lane)``. Moves: change to a neighbouring lane on the same
edge (a fixed time penalty), or cross an intersection into a following edge, which
is allowed only from the proper lane (right turns from the kerb lane, left turns from
the divider lane, straight on from any lane into the same lane). Costs are travel
times, so the route is the *fastest* one; the heuristic (straight-line distance over
the town's highest speed limit) never overestimates, so A* returns an optimal route.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np

from .road import (
    INTERSECTION_RADIUS,
    LANE_WIDTH,
    TURN_LEFT,
    TURN_RIGHT,
    TURN_STRAIGHT,
    Town,
    turn_kind,
)

__all__ = ["LaneRoute", "Path", "astar_route", "build_path"]

LANE_CHANGE_COST = 3.0  # seconds; discourages needless lane changes
TURN_COST = {TURN_STRAIGHT: 0.0, TURN_RIGHT: 2.0, TURN_LEFT: 4.0}
MIN_EDGE_FOR_LANE_CHANGE = 30.0  # metres


@dataclass
class LaneRoute:
    """A* result: visited ``(edge, lane)`` states in order, and the total cost (s)."""

    states: list[tuple[int, int]]
    cost: float

    @property
    def edges(self) -> list[int]:
        out: list[int] = []
        for e, _ in self.states:
            if not out or out[-1] != e:
                out.append(e)
        return out

    def exit_lanes(self) -> list[int]:
        """Lane held when leaving each edge of :attr:`edges` (the lane the route needs)."""
        lanes: dict[int, int] = {}
        for e, lane in self.states:
            lanes[e] = lane
        return [lanes[e] for e in self.edges]


def _neighbours(town: Town, edge: int, lane: int) -> list[tuple[tuple[int, int], float]]:
    e = town.edges[edge]
    out: list[tuple[tuple[int, int], float]] = []
    if e.length >= MIN_EDGE_FOR_LANE_CHANGE:
        for nl in (lane - 1, lane + 1):
            if 0 <= nl < e.lanes:
                out.append(((edge, nl), LANE_CHANGE_COST))
    rev = town.reverse_of(e)
    for nid in town.out_edges[e.dst]:
        if nid == rev:
            continue  # no U-turns
        nxt = town.edges[nid]
        kind = turn_kind(e, nxt)
        if kind == TURN_RIGHT and lane != e.lanes - 1:
            continue
        if kind == TURN_LEFT and lane != 0:
            continue
        if kind == TURN_STRAIGHT and lane >= nxt.lanes:
            continue
        new_lane = {TURN_RIGHT: nxt.lanes - 1, TURN_LEFT: 0}.get(kind, lane)
        cost = nxt.length / nxt.speed_limit + 2 * INTERSECTION_RADIUS / nxt.speed_limit
        out.append(((nid, new_lane), cost + TURN_COST[kind]))
    return out


def astar_route(
    town: Town, start: tuple[int, int], goal_edge: int, *, use_heuristic: bool = True
) -> LaneRoute | None:
    """Fastest lane-level route from ``start = (edge, lane)`` onto ``goal_edge``.

    Args:
        town: The road graph.
        start: Initial edge and lane.
        goal_edge: Any lane of this edge is a goal.
        use_heuristic: ``False`` gives plain Dijkstra (used by tests as the reference).

    Returns:
        The route, or ``None`` when the goal cannot be reached.
    """
    vmax = max(e.speed_limit for e in town.edges)
    goal_xy = town.edges[goal_edge].points[0]

    def h(state: tuple[int, int]) -> float:
        if not use_heuristic or state[0] == goal_edge:
            return 0.0
        end = town.edges[state[0]].points[-1]
        return float(np.linalg.norm(goal_xy - end)) / vmax

    tie = itertools.count()
    frontier: list[tuple[float, int, float, tuple[int, int]]] = [(h(start), 0, 0.0, start)]
    best = {start: 0.0}
    parent: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
    while frontier:
        _, _, g, state = heapq.heappop(frontier)
        if g > best.get(state, np.inf):
            continue
        if state[0] == goal_edge:
            path = [state]
            while (p := parent[path[-1]]) is not None:
                path.append(p)
            return LaneRoute(path[::-1], g)
        for nxt, cost in _neighbours(town, *state):
            ng = g + cost
            if ng < best.get(nxt, np.inf) - 1e-12:
                best[nxt] = ng
                parent[nxt] = state
                heapq.heappush(frontier, (ng + h(nxt), next(tie), ng, nxt))
    return None


@dataclass
class Path:
    """The route corridor: a dense centreline with per-sample road attributes.

    Attributes:
        xy: ``[P, 2]`` road-centre points every ``ds`` metres. s: ``[P]`` arc length.
        heading: ``[P]`` rad. kappa: ``[P]`` curvature (1/m, left positive).
        speed_limit: ``[P]`` m/s. lanes: lanes per direction.
        route_lane: ``[P]`` lane the route wants to be in (exit lane of the current edge).
        edge_index: ``[P]`` position in the route's edge list (-1 inside intersections).
    """

    xy: np.ndarray
    s: np.ndarray
    heading: np.ndarray
    kappa: np.ndarray
    speed_limit: np.ndarray
    route_lane: np.ndarray
    edge_index: np.ndarray
    lanes: int
    ds: float

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def _idx(self, s: np.ndarray) -> np.ndarray:
        return np.clip(np.round(np.asarray(s) / self.ds).astype(np.int64), 0, len(self.s) - 1)

    def at(self, s: np.ndarray | float, attr: str) -> np.ndarray:
        """Nearest-sample lookup of a per-sample attribute at arc length ``s``."""
        return getattr(self, attr)[self._idx(np.asarray(s))]

    def to_world(self, s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frenet ``(s, d)`` -> world ``xy [..., 2]`` and heading ``[...]``."""
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.s[-1])
        f = s / self.ds
        i0 = np.clip(np.floor(f).astype(np.int64), 0, len(self.s) - 2)
        w = (f - i0)[..., None]
        base = self.xy[i0] * (1 - w) + self.xy[i0 + 1] * w
        hd = self.heading[i0]
        normal = np.stack([-np.sin(hd), np.cos(hd)], -1)
        return base + normal * np.asarray(d, dtype=np.float64)[..., None], hd

    def project(self, xy: np.ndarray, s_hint: float, window: float = 30.0,
                ahead: float | None = None) -> tuple[float, float]:
        """World point -> Frenet ``(s, d)``, searching ``s_hint - window .. s_hint + ahead``.

        ``ahead`` defaults to ``window``. A short window keeps a moving car's ``s``
        continuous where the corridor bends back near itself (a tight turn whose exit
        road passes close to the car cutting the corner).
        """
        ahead = window if ahead is None else ahead
        lo = min(max(int((s_hint - window) / self.ds), 0), len(self.s) - 1)
        # At least one sample: a car that turned round behind the start still projects.
        hi = max(min(int((s_hint + ahead) / self.ds) + 1, len(self.s)), lo + 1)
        rel = xy[None, :] - self.xy[lo:hi]
        k = int(np.argmin((rel**2).sum(1)))
        hd = self.heading[lo + k]
        t = np.array([np.cos(hd), np.sin(hd)])
        n = np.array([-np.sin(hd), np.cos(hd)])
        return float(self.s[lo + k] + rel[k] @ t), float(rel[k] @ n)

    def lane_center(self, lane: np.ndarray | int) -> np.ndarray:
        return -(np.asarray(lane, dtype=np.float64) + 0.5) * LANE_WIDTH

    def lane_of(self, d: np.ndarray | float) -> np.ndarray:
        return np.clip(np.floor(-np.asarray(d) / LANE_WIDTH), 0, self.lanes - 1).astype(np.int64)


def _bezier(p0: np.ndarray, c: np.ndarray, p1: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n + 1)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * c + t**2 * p1


def build_path(town: Town, route: LaneRoute, ds: float = 0.5) -> Path:
    """Concatenate the route's edges and intersection connectors into one corridor."""
    edges = route.edges
    exit_lanes = route.exit_lanes()
    pts: list[np.ndarray] = []
    limit: list[np.ndarray] = []
    lane: list[np.ndarray] = []
    index: list[np.ndarray] = []
    for k, eid in enumerate(edges):
        e = town.edges[eid]
        pts.append(e.points)
        n = len(e.points)
        limit.append(np.full(n, e.speed_limit))
        lane.append(np.full(n, exit_lanes[k]))
        index.append(np.full(n, k))
        if k + 1 < len(edges):
            nxt = town.edges[edges[k + 1]]
            conn = _bezier(e.points[-1], town.nodes[e.dst], nxt.points[0], 24)[1:-1]
            pts.append(conn)
            limit.append(np.full(len(conn), min(e.speed_limit, nxt.speed_limit)))
            lane.append(np.full(len(conn), exit_lanes[k]))  # same lane index through the turn
            index.append(np.full(len(conn), -1))
    raw = np.concatenate(pts)
    seg = np.linalg.norm(np.diff(raw, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-6])
    raw = raw[keep]
    s_raw = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(raw, axis=0), axis=1))])
    s = np.arange(0.0, s_raw[-1], ds)
    xy = np.stack([np.interp(s, s_raw, raw[:, 0]), np.interp(s, s_raw, raw[:, 1])], 1)
    near = np.clip(np.searchsorted(s_raw, s), 0, len(s_raw) - 1)
    d = np.gradient(xy, ds, axis=0)
    heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    # Smooth heading a little so curvature is not dominated by resampling kinks.
    kernel = np.ones(5) / 5
    heading_s = np.convolve(np.pad(heading, 2, mode="edge"), kernel, mode="valid")
    kappa = np.gradient(heading_s, ds)
    return Path(
        xy=xy,
        s=s,
        heading=heading_s,
        kappa=kappa,
        speed_limit=np.concatenate(limit)[keep][near],
        route_lane=np.concatenate(lane)[keep][near],
        edge_index=np.concatenate(index)[keep][near],
        lanes=town.edges[edges[0]].lanes,
        ds=ds,
    )
