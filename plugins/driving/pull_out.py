"""Pulling out round something standing in the lane, for a planner that has stopped
behind it.

The learned planner's commonest failure is to stop behind a parked car (or a queue
behind one) that it meant to pass, and stand there to the time limit. :class:`PullOut`
is the recovery, in the spirit of the "side pass" scenario of rule-based stacks such as
Baidu Apollo: after the ego has stood still for a few seconds with a standing radar
target ahead in its lane, it looks for a lane change round it, a smooth lateral blend
into the next lane, whose swept footprint the LiDAR shows free and whose next lane
leaves room behind (the same follower check as :class:`~.safety.LaneChangeGuard`), and
drives it at walking pace, checking the corridor again every frame (stopping, not
giving up, while it is not free). Once the ego is in the next lane the planner has the
wheel again.

Everything is measured from the sensors the planner has: the lane from the route
sensor (:func:`~.geometry.lane_references`, allowing for an ego angled off it), the
obstacle and the corridor from the LiDAR (an ego angled out behind a parked car can
have it outside the radar's cone).

Part of :func:`~.safety.safety_layer`, last (it overrides the brakes only while the
ego stands or creeps round). On the 64 validation scenarios it took the planner round
the parked car in one of them (0.821 -> 0.831, collisions unchanged at 4), and in two
more once it also counted returns up to 1 m beside the straight way (the planner stops
for a car it would just pass: 0.850). It needs the simulator's
oriented-box collisions: with the lane-aligned bounding box the simulator used before,
an ego angled out 1-2 m behind a parked car already "touched" it and no path round was
accepted (0.806 with and without).
Tried with it and dropped: also stopping a slow (< 4 m/s) plan 4 m short of where its
swept footprint meets a standing LiDAR return, to keep room to pull out. It stopped the
car before road edges and cars beside it in lane changes, and the planner then stood:
validation 0.620 against 0.806 without.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .expert import COMFORT_DECEL, N_WAYPOINTS, Plan
from .geometry import LaneFrame, lane_references, lidar_points, standing_points
from .safety import LaneChangeGuard
from .sim.road import LANE_WIDTH
from .sim.sensors import SensorConfig
from .sim.world import EGO_LENGTH, EGO_WIDTH, MAX_STEER, WHEELBASE

__all__ = ["PullOut", "blend", "swept_clear"]


def blend(along: np.ndarray, start: float, end: float, length: float,
          slope0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Offset and slope along a quintic from offset ``start`` with slope ``slope0`` (and
    no curvature) to ``end`` with neither, over ``length`` metres; constant after it."""
    a = np.clip(along, 0.0, length)
    h, L = end - start, length
    c3 = (10 * h - 6 * slope0 * L) / L**3
    c4 = (-15 * h + 8 * slope0 * L) / L**4
    c5 = (6 * h - 3 * slope0 * L) / L**5
    offset = start + slope0 * a + c3 * a**3 + c4 * a**4 + c5 * a**5
    slope = slope0 + 3 * c3 * a**2 + 4 * c4 * a**3 + 5 * c5 * a**4
    return offset, np.where(along < length, slope, 0.0)


def swept_clear(along: np.ndarray, offset: np.ndarray, slope: np.ndarray,
                pts_along: np.ndarray, pts_off: np.ndarray, margin: tuple[float, float]
                ) -> bool:
    """Whether no point lies in the ego's box at any of the path's samples.

    The box at each sample is the ego's own, turned to the path's heading (the simulator
    judges collisions with the same oriented boxes).

    Args:
        along, offset, slope: Path samples in the lane frame ``[S]``.
        pts_along, pts_off: LiDAR returns in the lane frame ``[P]``.
        margin: Clearance (m) kept ahead/behind and to the sides of the box.
    """
    reach = EGO_LENGTH + margin[0] + margin[1]  # no box reaches further from its centre
    near = ((pts_along > along.min() - reach) & (pts_along < along.max() + reach)
            & (pts_off > offset.min() - reach) & (pts_off < offset.max() + reach))
    if not near.any():
        return True
    fwd, side = _in_box_frame(along, offset, np.arctan(slope), pts_along[near], pts_off[near])
    inside = (np.abs(fwd) < EGO_LENGTH / 2 + margin[0]) & (
        np.abs(side) < EGO_WIDTH / 2 + margin[1])  # [S, P]
    return not bool(inside.any())


def _in_box_frame(along: np.ndarray, offset: np.ndarray, heading: np.ndarray,
                  pts_along: np.ndarray, pts_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points ``[P]`` in the frames of boxes at ``[S]`` poses: ahead and to the left of
    each box's centre, ``[S, P]`` each."""
    da = pts_along[None] - np.atleast_1d(along)[:, None]
    do = pts_off[None] - np.atleast_1d(offset)[:, None]
    c, s = np.cos(np.atleast_1d(heading))[:, None], np.sin(np.atleast_1d(heading))[:, None]
    return da * c + do * s, do * c - da * s


@dataclass
class PullOut:
    """Pull out round a standing obstacle after standing behind it for ``wait`` seconds.

    Args:
        wait: Seconds stood still (speed and planned speed near zero) before it acts.
        dt: Seconds between calls (the simulator's step: the guards run every step).
        reach: Bumper gap (m) within which a standing LiDAR return ahead counts.
        beside: How far (m) to the side of the ego's straight way ahead it counts: the
            planner also stops where it would just pass (the network's own caution).
        creep: Speed (m/s) of the manoeuvre.
        lengths: Blend lengths (m) tried, shortest first.
        margin: Clearance (m) along and across the lane kept from every LiDAR return
            by the way round that starts a manoeuvre.
        keep_margin: The same for going on with one.
        timeout: Seconds after which an unfinished manoeuvre hands back to the planner.
        done: Offset (m) from the next lane's centre at which the manoeuvre is complete.
        max_slope: Steepest slope of the lane's centre line in the ego frame (the tangent
            of the ego's heading off the lane) at which the lane is still found.
        lane_width: Lane width (m).
        lidar_range: The LiDAR's maximum range (a return at it hit nothing).
    """

    wait: float = 3.0
    dt: float = 0.1
    reach: float = 12.0
    beside: float = 1.0
    creep: float = 1.5
    lengths: tuple[float, ...] = (4.0, 6.0, 8.0, 10.0, 12.0, 15.0)
    margin: tuple[float, float] = (0.3, 0.3)
    keep_margin: tuple[float, float] = (0.15, 0.1)
    timeout: float = 20.0
    done: float = 0.5
    max_slope: float = 0.6
    lane_width: float = LANE_WIDTH
    lidar_range: float = SensorConfig.lidar_range
    _stood: float = field(default=0.0, init=False, repr=False)
    #: The manoeuvre under way: (offset of the next lane's centre, seconds since it began).
    _active: tuple[float, float] | None = field(default=None, init=False, repr=False)
    _gap_check: LaneChangeGuard = field(default_factory=LaneChangeGuard, init=False,
                                        repr=False)

    @property
    def active(self) -> bool:
        """Whether a manoeuvre is under way."""
        return self._active is not None

    def __call__(self, plan: Plan, obs: dict[str, np.ndarray], speed: float) -> Plan:
        if self._active is None:
            still = speed < 0.3 and plan.target_speed < 0.3
            self._stood = self._stood + self.dt if still else 0.0
            if self._stood < self.wait - 1e-9:
                return plan
        # An ego that stopped angled out heads up to ~30 degrees off its lane.
        ref = next(lane_references(np.asarray(obs["route"]), self.lane_width,
                                   max_slope=self.max_slope), None)
        if ref is None:  # in a junction: no lane to leave
            self._active = None
            return plan
        frame = LaneFrame(ref)
        ego = float(frame.project(np.zeros((1, 2)))[1][0])
        slope0 = -float(ref.deriv()(0.0))  # the ego's heading off the lane, as a slope
        pts = lidar_points(obs["lidar"], self.lidar_range)
        pts_along, pts_off = frame.project(pts) if len(pts) else (np.zeros(0), np.zeros(0))
        if self._active is None:
            target = self._start(frame, ego, slope0, obs, speed, pts, pts_along, pts_off, plan)
            if target is None:
                return plan
            self._active, self._stood = (target, 0.0), 0.0
        target, elapsed = self._active
        if abs(ego - target) < self.done or elapsed > self.timeout:
            self._active = None
            return plan
        self._active = (target, elapsed + self.dt)
        # Less margin once under way than to start (the plan is made again every frame,
        # and with the starting margin a car half round the obstacle would stop and go).
        length = self._free_length(ego, slope0, target, pts_along, pts_off, self.keep_margin)
        if length is None:  # something came into the corridor: wait for it
            return replace(plan, target_speed=0.0, accel=min(plan.accel, -COMFORT_DECEL))
        return self._plan(frame, ego, slope0, target, length, speed)

    def _blocker(self, ego: float, slope0: float, pts: np.ndarray, pts_along: np.ndarray,
                 pts_off: np.ndarray, obs: dict[str, np.ndarray]) -> float | None:
        """Lane-frame offset of the nearest LiDAR return within ``reach`` ahead of the
        ego and ``beside`` of its straight way, if it stood still over the last sweeps;
        None if there is none.

        The LiDAR, not the radar: an ego angled out behind a parked car can have it
        outside the radar's cone.
        """
        fwd, side = _in_box_frame(np.zeros(1), np.array([ego]), np.arctan(np.array([slope0])),
                                  pts_along, pts_off)
        fwd, side = fwd[0], side[0]
        k = np.flatnonzero((fwd > 0) & (fwd < EGO_LENGTH / 2 + self.reach)
                           & (np.abs(side) < EGO_WIDTH / 2 + self.beside))
        if not len(k):
            return None
        k = k[np.argmin(fwd[k])]
        if not standing_points(pts[k:k + 1], obs, self.lidar_range)[0]:
            return None  # it moved
        return float(pts_off[k])

    def _start(self, frame: LaneFrame, ego: float, slope0: float,
               obs: dict[str, np.ndarray], speed: float, pts: np.ndarray,
               pts_along: np.ndarray, pts_off: np.ndarray, plan: Plan) -> float | None:
        """The next lane's centre offset to pull out into, or None when there is nothing
        to pull out round or no free way round it."""
        blocker = self._blocker(ego, slope0, pts, pts_along, pts_off, obs)
        if blocker is None:
            return None
        lane = round(blocker / self.lane_width)
        # The side the ego already leans to (it usually stopped angled out), then the
        # side the planner points to, then the left (parked cars stand on the kerb).
        lean = ego - lane * self.lane_width
        _, plan_off = frame.project(plan.waypoints)
        prefer = np.sign(lean) if abs(lean) > 0.3 else np.sign(plan_off[-1] - ego)
        sides = (1.0, -1.0) if prefer >= 0 else (-1.0, 1.0)
        for side in sides:
            target = (lane + side) * self.lane_width
            if self._free_length(ego, slope0, target, pts_along, pts_off, self.margin) is None:
                continue
            if self._gap_check.next_lane_free(frame, lane, side, obs, speed):
                return target
        return None

    def _free_length(self, ego: float, slope0: float, target: float, pts_along: np.ndarray,
                     pts_off: np.ndarray, margin: tuple[float, float]) -> float | None:
        """The shortest blend length the car can steer whose swept corridor is free."""
        kappa_max = 0.8 * np.tan(MAX_STEER) / WHEELBASE  # a fifth in hand for tracking
        for length in self.lengths:
            along = np.arange(0.5, length + EGO_LENGTH + 8.0, 0.5)
            offset, slope = blend(along, ego, target, length, slope0)
            if np.abs(np.diff(slope)).max() / 0.5 > kappa_max:
                continue
            if swept_clear(along, offset, slope, pts_along, pts_off, margin):
                return length
        return None

    def _plan(self, frame: LaneFrame, ego: float, slope0: float, target: float,
              length: float, speed: float) -> Plan:
        along = np.linspace(2.0, 2.0 * N_WAYPOINTS, N_WAYPOINTS)
        offset, _ = blend(along, ego, target, length, slope0)
        accel = float(np.clip(self.creep - speed, -1.0, 0.5))
        return Plan(frame.point(along, offset), self.creep, accel)
