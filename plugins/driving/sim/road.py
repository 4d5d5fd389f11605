"""Road graph: a town of intersections joined by multi-lane straight and curved roads.

A town is a jittered grid of intersection nodes. Every pair of grid neighbours is
joined by a two-way road; each direction is a directed :class:`Edge` with its own
centreline polyline (straight, or curved by a quadratic Bezier bulge), lane count
and speed limit. Right-hand traffic: lane 0 is the lane next to the centre divider,
lane ``n-1`` the kerb lane; lane ``i`` has its centre at lateral offset
``d = -(i + 0.5) * lane_width`` from the road centre (left of travel is positive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TURN_LEFT", "TURN_RIGHT", "TURN_STRAIGHT", "Edge", "Town", "make_town", "turn_kind"]

LANE_WIDTH = 3.5
#: Roads start/stop this far from the node centre; the gap is the intersection box. Large
#: enough that the kerb lane of a right turn (5.25 m inside the centreline) keeps a radius
#: above the ego's minimum turning radius (WHEELBASE / tan(MAX_STEER) = 4 m).
INTERSECTION_RADIUS = 16.0
TURN_STRAIGHT, TURN_LEFT, TURN_RIGHT = 0, 1, 2


@dataclass
class Edge:
    """One direction of a road between two intersection nodes.

    Attributes:
        id: Index in :attr:`Town.edges`.
        src: Start node. dst: End node.
        points: ``[P, 2]`` road-centre polyline from ``src`` to ``dst`` (trimmed by the
            intersection radius at both ends), sampled every ~1 m.
        lanes: Lanes in this direction.
        speed_limit: m/s.
    """

    id: int
    src: int
    dst: int
    points: np.ndarray
    lanes: int
    speed_limit: float

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum())

    @property
    def heading_out(self) -> float:
        d = self.points[-1] - self.points[-2]
        return float(np.arctan2(d[1], d[0]))

    @property
    def heading_in(self) -> float:
        d = self.points[1] - self.points[0]
        return float(np.arctan2(d[1], d[0]))


@dataclass
class Town:
    """Nodes (intersection centres) and directed edges."""

    nodes: np.ndarray  # [N, 2]
    edges: list[Edge]
    seed: int = 0
    out_edges: dict[int, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out_edges = {n: [] for n in range(len(self.nodes))}
        for e in self.edges:
            self.out_edges[e.src].append(e.id)

    def reverse_of(self, edge: Edge) -> int | None:
        for eid in self.out_edges[edge.dst]:
            if self.edges[eid].dst == edge.src:
                return eid
        return None


def turn_kind(a: Edge, b: Edge) -> int:
    """Whether going from edge ``a`` into edge ``b`` is straight, a left or a right turn."""
    dh = (b.heading_in - a.heading_out + np.pi) % (2 * np.pi) - np.pi
    if abs(dh) < np.pi / 4:
        return TURN_STRAIGHT
    return TURN_LEFT if dh > 0 else TURN_RIGHT


def _polyline(p0: np.ndarray, p1: np.ndarray, bulge: float) -> np.ndarray:
    """Quadratic Bezier from p0 to p1 whose middle is pushed ``bulge`` metres sideways."""
    chord = p1 - p0
    length = float(np.linalg.norm(chord))
    normal = np.array([-chord[1], chord[0]]) / max(length, 1e-9)
    ctrl = (p0 + p1) / 2 + normal * 2 * bulge  # the curve's midpoint sits at bulge
    n = max(int(length), 2)
    t = np.linspace(0.0, 1.0, n + 1)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t**2 * p1


def _trim(points: np.ndarray, start: float, end: float) -> np.ndarray:
    """Cut ``start`` metres off the front and ``end`` off the back; resample at ~1 m."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    new_s = np.linspace(start, s[-1] - end, max(int(s[-1] - start - end), 2) + 1)
    return np.stack([np.interp(new_s, s, points[:, 0]), np.interp(new_s, s, points[:, 1])], 1)


def make_town(
    seed: int,
    grid: tuple[int, int] = (4, 4),
    block: float = 110.0,
    curved_fraction: float = 0.4,
    lanes: int = 2,
) -> Town:
    """A random town: jittered grid nodes, curved and straight two-way roads.

    Args:
        seed: Everything (jitter, curvature, lanes, limits, removed roads) follows from it.
        grid: Nodes along x and y.
        block: Grid spacing in metres.
        curved_fraction: Share of roads with a curved centreline.
        lanes: Lanes per direction, the same on every road of the town so lane indices
            carry straight through intersections (turns: right from the kerb lane, left
            from the divider lane).
    """
    rng = np.random.default_rng(seed)
    gx, gy = grid
    nodes = np.array(
        [[i * block, j * block] for j in range(gy) for i in range(gx)], dtype=np.float64
    )
    nodes += rng.uniform(-0.12, 0.12, size=nodes.shape) * block
    pairs = []
    for j in range(gy):
        for i in range(gx):
            a = j * gx + i
            if i + 1 < gx:
                pairs.append((a, a + 1))
            if j + 1 < gy:
                pairs.append((a, a + gx))
    edges: list[Edge] = []
    for a, b in pairs:
        # Keep the grid connected: only drop interior roads, and few of them.
        if rng.random() < 0.08 and 0 < a % gx < gx - 1 and 0 < a // gx < gy - 1:
            continue
        bulge = rng.uniform(-0.18, 0.18) * block if rng.random() < curved_fraction else 0.0
        limit = float(rng.choice([11.1, 13.9, 13.9, 16.7]))  # 40/50/60 km/h
        base = _polyline(nodes[a], nodes[b], bulge)
        fwd = _trim(base, INTERSECTION_RADIUS, INTERSECTION_RADIUS)
        edges.append(Edge(len(edges), a, b, fwd, lanes, limit))
        edges.append(Edge(len(edges), b, a, fwd[::-1].copy(), lanes, limit))
    return Town(nodes, edges, seed)
