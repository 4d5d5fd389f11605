"""A rule-based safety layer behind the learned planner: a gap check before lane changes
(LiDAR; the camera at junction entries), steering away from a car closing in beside,
radar emergency braking along the planned path, LiDAR braking for what stands in it,
pulling out round a standing car the planner has stopped behind (:mod:`.pull_out`), and
letting go of the brakes gradually.

End-to-end planners are usually deployed behind such rules: the TransFuser agents brake
when LiDAR returns or detected boxes fall in the area ahead. The rules here read only
sensors the planner has. :class:`LaneChangeGuard` keeps the ego in its lane while the
LiDAR shows a car beside it, or one closing from behind, in the lane the plan moves into
(the check the expert makes before it changes lanes); :class:`SideGuard` steers away
from a car beside that the ego closes in on (a turn run wide); :class:`EmergencyBrake`
brakes for radar targets on the path (the radar measures the closing speed directly);
:class:`LidarBrake` brakes for standing LiDAR returns in the plan's corridor (in a
junction's turn the radar's cone looks past them); :class:`~.pull_out.PullOut` takes the
ego round a standing car after it has stood behind it for 3 s; :class:`SmoothRelease`
limits how fast the acceleration rises after any of them braked. Route following, the
choice to change lanes and normal car following stay the network's; ``suite drive
evaluate`` reports the planner with and without this layer.

Tried and dropped before the pull-out: creeping on after standing still for a few
seconds with the radar path clear (as the TransFuser agents do when stuck). A stuck
planner mostly stands behind a parked car it has not yet passed; creeping made it clip
that car (4 of 32 held-out scenarios went from standing still to a collision) or wander
off the road.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Protocol

import numpy as np

from .drives import HISTORY_DT
from .expert import COMFORT_DECEL, EMERGENCY_DECEL, STANDING_S0, Plan
from .geometry import LaneFrame, lane_references, lidar_points, repeats_sweep, standing_points
from .sim.road import LANE_WIDTH
from .sim.sensors import SensorConfig, camera_grid
from .sim.world import EGO_LENGTH, EGO_WIDTH, ScenarioConfig

__all__ = [
    "EmergencyBrake",
    "Guard",
    "LaneChangeGuard",
    "LidarBrake",
    "SideGuard",
    "SmoothRelease",
    "braked",
    "distance_to_path",
    "path_position",
    "safety_layer",
    "targets_in_path",
]


class Guard(Protocol):
    """Maps the planner's plan (and the current sensors, own speed) to the plan to drive.

    ``obs`` is the frame the planner saw: the sensors, and for planners that read it the
    earlier LiDAR sweep and where it was taken (``lidar_prev``, ``prev_pose``).
    """

    def __call__(self, plan: Plan, obs: dict[str, np.ndarray], speed: float) -> Plan: ...


def path_position(points: np.ndarray, path: np.ndarray, extend: float = 60.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Lateral distance of ``points [N, 2]`` to the polyline from the origin through
    ``path [M, 2]`` (ego frame), continued ``extend`` metres along its last segment, and
    how far along the polyline each point's nearest spot lies (``[N]`` each)."""
    poly = np.concatenate([np.zeros((1, 2)), path])
    tail = poly[-1] - poly[-2]
    tail = tail / max(float(np.linalg.norm(tail)), 1e-6)
    poly = np.concatenate([poly, poly[-1:] + tail * extend])
    a, b = poly[:-1], poly[1:]  # segments [S, 2]
    ab = b - a
    seg = np.linalg.norm(ab, axis=1)
    start = np.concatenate([[0.0], np.cumsum(seg)[:-1]])  # arc length at each segment start
    t = ((points[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab**2).sum(-1), 1e-9)
    t = np.clip(t, 0.0, 1.0)  # [N, S]
    closest = a[None] + t[..., None] * ab[None]  # [N, S, 2]
    dist = np.linalg.norm(points[:, None] - closest, axis=-1)
    k = dist.argmin(1)
    n = np.arange(len(points))
    return dist[n, k], start[k] + t[n, k] * seg[k]


def distance_to_path(points: np.ndarray, path: np.ndarray, extend: float = 60.0) -> np.ndarray:
    """Lateral distance of ``points [N, 2]`` to the polyline from the origin through
    ``path [M, 2]`` (ego frame), continued ``extend`` metres along its last segment."""
    return path_position(points, path, extend)[0]


def targets_in_path(plan: Plan, radar: np.ndarray, half_width: float,
                    target_length: float) -> tuple[np.ndarray, np.ndarray]:
    """Bumper gaps (m) and closing speeds (m/s) of the radar targets on the planned path."""
    seen = radar[radar[:, 3] > 0]
    if not len(seen):
        return np.zeros(0), np.zeros(0)
    r, az, rate = seen[:, 0], seen[:, 1], seen[:, 2]
    xy = np.stack([r * np.cos(az), r * np.sin(az)], 1)
    on = (xy[:, 0] > 0) & (distance_to_path(xy, plan.waypoints) < half_width)
    return r[on] - (EGO_LENGTH + target_length) / 2, np.maximum(-rate[on], 0.0)


def braked(plan: Plan, decel: float, speed: float) -> Plan:
    """``plan`` braking at ``decel`` m/s² (at most the emergency deceleration), its target
    speed lowered to match: what the brakes hand on."""
    brake = min(decel, EMERGENCY_DECEL)
    return replace(plan, accel=min(plan.accel, -brake),
                   target_speed=min(plan.target_speed, max(speed - brake, 0.0)))


@dataclass
class EmergencyBrake:
    """Brake for radar targets on the planned path that the plan would not stop for.

    Args:
        half_width: Lateral distance (m) from the path at which a target's centre counts
            as in the way (half the ego's width + half a car's + a margin).
        comfort: Deceleration (m/s²) needed to stop behind a target above which the
            check takes over.
        stop_gap: Bumper gap (m) to stop at.
        standing_gap: Bumper gap (m) to stop at behind a target that stands still: room
            to steer round it later (the expert's ``STANDING_S0`` less a metre; a planner
            that drove up to 1-3 m behind a parked car it meant to pass stood there to
            the time limit, too close to steer round it).
        target_length: Assumed length (m) of a target (radar ranges are to its centre).
    """

    half_width: float = 2.0
    comfort: float = 3.0
    stop_gap: float = 2.0
    standing_gap: float = STANDING_S0 - 1.0
    target_length: float = 4.6

    def __call__(self, plan: Plan, obs: dict[str, np.ndarray], speed: float) -> Plan:
        gap, closing = targets_in_path(plan, np.asarray(obs["radar"]), self.half_width,
                                       self.target_length)
        if not len(gap):
            return plan
        standing = speed - closing < 0.5  # the target's own speed along the line of sight
        gap = gap - np.where(standing, self.standing_gap, self.stop_gap)
        need = closing**2 / (2 * np.maximum(gap, 0.3))
        # Inside the stopping gap and still closing: stop, however slowly we approach.
        need_max = float(np.where((gap <= 0.0) & (closing > 0.1), EMERGENCY_DECEL, need).max())
        if need_max <= self.comfort:
            return plan
        return braked(plan, need_max, speed)


@dataclass
class LidarBrake:
    """Brake for standing LiDAR returns in the planned path's corridor that the plan
    would run into: what the radar's +-0.5 rad cone misses in a junction's turn (a
    parked car just round the corner, a slow car stopped in it).

    The corridor follows the plan's own waypoints only (a short straight continuation):
    continued further, it would leave a turning road and meet the kerb. Below 0.5 m/s it
    lets the ego be (holding it there cost 0.04 of validation score; what it stopped
    behind is the pull-out's).

    Args:
        half_width: Lateral distance (m) from the path within which a return is in the
            way (half the ego's width and a margin).
        comfort: Deceleration (m/s²) needed to stop short of it above which it brakes.
        stop_gap: Bumper gap (m) to stop at.
        extend: Metres the corridor continues past the last waypoint.
        route_end: Metres before the route's end (the route sensor's distance to go)
            from which returns are left out.
        lidar_range: The LiDAR's maximum range (a return at it hit nothing).
    """

    half_width: float = 1.1
    comfort: float = 3.0
    stop_gap: float = 1.0
    extend: float = 2.0
    route_end: float = 3.0
    lidar_range: float = SensorConfig.lidar_range

    def __call__(self, plan: Plan, obs: dict[str, np.ndarray], speed: float) -> Plan:
        if speed < 0.5 or repeats_sweep(obs):
            return plan  # standing, or no earlier sweep to tell standing returns by
        pts = lidar_points(obs["lidar"], self.lidar_range)
        pts = pts[pts[:, 0] > EGO_LENGTH / 2]
        pts = pts[standing_points(pts, obs, self.lidar_range)]  # moving cars: the radar's
        if not len(pts):
            return plan
        lateral, along = path_position(pts, plan.waypoints, self.extend)
        # The drive ends 2 m short of the route's end, where the simulator parks the cars
        # that drove past it: what stands beyond is not in the ego's way.
        left = float(obs["route"][9]) * 100.0
        ahead = along[(lateral < self.half_width) & (along < left - self.route_end)]
        if not len(ahead):
            return plan
        gap = float(ahead.min()) - EGO_LENGTH / 2 - self.stop_gap
        need = EMERGENCY_DECEL if gap <= 0.0 else speed**2 / (2 * gap)
        if need <= self.comfort:
            return plan
        return braked(plan, need, speed)


@dataclass
class LaneChangeGuard:
    """Hold the lane while the lane the plan moves into is not free.

    The plan's waypoints and the LiDAR returns are measured from the centre of the ego's
    lane (found from the route sensor, see :func:`lane_references`). A plan that leaves the
    lane by more than ``intent`` metres is checked like the expert's own lane change:
    returns in the next lane beside the ego stop it; so does the nearest one behind (a
    follower's front) closer than the MOBIL-style safe gap ``3 m + 0.6 s·v_f + 2.5 s·(v_f
    - v)``, and the nearest one ahead closer than the room to brake for it. Speeds come
    from the same returns in the sweep :data:`~.drives.HISTORY_DT` earlier; without one
    (the first frames of a drive) a follower is taken to drive at the speed limit. A
    held plan is given back with its waypoints on the lane centre and the same speed
    (the emergency brake after it deals with what is ahead in the lane). Where no lane
    centre can be found (a junction's entry, the route points already turning) the check
    falls back to the camera: see :meth:`_without_lane`.

    Args:
        intent: Lateral offset (m) from the lane centre above which a plan changes lanes.
        centred: Largest offset (m) of the ego from its lane centre at which it checks:
            further out it is already between lanes (or off the road after a turn), where
            the lane it is "in" is a guess and holding it could do harm. A candidate
            centre line that puts the ego further out than this is taken to be wrong
            and the next one is tried.
        near: Lateral band (m from the lane centre) where the next lane's cars return.
        lidar_range: The LiDAR's maximum range (a return at it hit nothing).
        turning: Yaw rate (rad/s) above which the ego is well into a turn (the junction
            check stays out of it; the IMU reads the yaw rate to about 0.07 rad/s).
        camera: The camera's geometry (resolution, ego row) for the junction check.
    """

    intent: float = 1.0
    centred: float = 0.9
    near: tuple[float, float] = (1.5, LANE_WIDTH + 1.0)
    lidar_range: float = SensorConfig.lidar_range
    lane_width: float = LANE_WIDTH
    turning: float = 0.3
    camera: SensorConfig = field(default_factory=SensorConfig)

    @cached_property
    def _camera_xy(self) -> tuple[np.ndarray, np.ndarray]:
        return camera_grid(self.camera)

    def _nearest(self, frame: LaneFrame, pts: np.ndarray, lane: int, side: float
                 ) -> tuple[float, float, bool]:
        """Along-lane positions of the nearest return behind and ahead of the ego in the
        next lane on ``side`` (-inf / inf when none), and whether one is beside it."""
        along, off = frame.project(pts)
        off = side * (off - lane * self.lane_width)
        x = along[(off > self.near[0]) & (off < self.near[1])]
        half = EGO_LENGTH / 2 + 1.0
        behind, ahead = x[x < -half], x[x > half]
        return (float(behind.max()) if len(behind) else -np.inf,
                float(ahead.min()) if len(ahead) else np.inf,
                bool((np.abs(x) <= half).any()))

    def __call__(self, plan: Plan, obs: dict[str, np.ndarray], speed: float) -> Plan:
        for ref in lane_references(np.asarray(obs["route"]), self.lane_width):
            frame = LaneFrame(ref)
            ego = float(frame.project(np.zeros((1, 2)))[1][0])  # the ego's offset from it
            lane = round(ego / self.lane_width)
            if abs(ego - lane * self.lane_width) <= self.centred:
                break
        else:
            return self._without_lane(plan, obs)
        _, off = frame.project(plan.waypoints)
        off = off - lane * self.lane_width
        shift = float(off[np.argmax(np.abs(off))])
        if abs(shift) < self.intent:
            return plan
        if self.next_lane_free(frame, lane, float(np.sign(shift)), obs, speed):
            return plan
        return replace(plan, waypoints=frame.shift(plan.waypoints, lane * self.lane_width))

    def next_lane_free(self, frame: LaneFrame, lane: int, side: float,
                        obs: dict[str, np.ndarray], speed: float) -> bool:
        """Whether the lane next to ``lane`` on ``side`` leaves room to move into it."""
        rear, front, beside = self._nearest(frame, lidar_points(obs["lidar"], self.lidar_range),
                                            lane, side)
        if beside:
            return False
        limit = float(obs["route"][8])
        v_rear, v_front = max(speed, limit), 0.0
        pose = obs.get("prev_pose")
        if pose is not None and not repeats_sweep(obs):
            before = lidar_points(obs["lidar_prev"], self.lidar_range, np.asarray(pose))
            rear0, front0, _ = self._nearest(frame, before, lane, side)
            if np.isfinite(rear0) and np.isfinite(rear):
                v_rear = float(np.clip((rear - rear0) / HISTORY_DT, 0.0, 2 * limit))
            if np.isfinite(front0) and np.isfinite(front):
                v_front = float(np.clip((front - front0) / HISTORY_DT, 0.0, 2 * limit))
        gap_rear = -rear - EGO_LENGTH / 2
        gap_front = front - EGO_LENGTH / 2
        # A car standing behind (seen in both sweeps) is waiting for the ego, which half
        # blocks its lane: holding for it too would leave both standing for good.
        need_rear = 1.0 if v_rear < 0.3 else 3.0 + 0.6 * v_rear + 2.5 * max(v_rear - speed, 0.0)
        need_front = 3.0 + max(speed - v_front, 0.0) ** 2 / 6.0  # closing, braking at 3 m/s²
        return gap_rear >= need_rear and gap_front >= need_front

    def _without_lane(self, plan: Plan, obs: dict[str, np.ndarray]) -> Plan:
        """At a junction's entry, where the route sensor's points already turn: a plan
        that swings across towards a car the camera shows beside or just behind the ego
        waits (stops) until it has passed.

        Without a lane to measure from, the ego's heading stands in for it while the ego
        is not yet turning itself; the camera's vehicle channel, unlike the LiDAR, does
        not return the kerb that a turn swings towards.
        """
        if abs(float(obs["imu"][3])) > self.turning:
            return plan
        shift = float(plan.waypoints[np.argmax(np.abs(plan.waypoints[:, 1])), 1])
        if abs(shift) < self.intent:
            return plan
        vehicles = _camera_vehicles(obs["camera"])  # [H, H]
        px, py = self._camera_xy
        x, off = px[vehicles], np.sign(shift) * py[vehicles]
        beside = (off > self.near[0]) & (off < self.near[1]) & (x < EGO_LENGTH / 2 + 1.0)
        if not beside.any():
            return plan
        return replace(plan, target_speed=0.0, accel=min(plan.accel, -COMFORT_DECEL))


def _camera_vehicles(camera: np.ndarray) -> np.ndarray:
    """The camera's vehicle pixels ``[H, H]`` (bool): fog mixes every channel towards half
    scale, so a vehicle stays above it and the road below."""
    return np.asarray(camera)[2] > 127


@dataclass
class SideGuard:
    """Steer away from a car closing in beside the ego, and do not speed up meanwhile.

    In the inner lane of a tight turn the planner's waypoints can turn too little: the
    ego runs wide, or straightens too late after the turn, into the car beside it in the
    outer lane. The guard measures the gap between the ego's side and the LiDAR returns
    beside it that the camera shows on a vehicle (the kerb returns too, but is no
    vehicle), and how fast it shrinks between the earlier sweep and this one, each in
    its own ego frame. Under ``margin``, or with contact nearer than ``horizon`` at that
    rate, the plan's waypoints move ``shift`` metres away, when the other side has room.

    Args:
        margin: Side gap (m) under which it steers away however slowly the gap shrinks.
        horizon: Time (s) to contact below which it steers away.
        shift: Metres the waypoints move away from the car.
        room: Side gap (m) the other side must have (any return, the kerb too).
        reach: Metres beyond the ego's front and back that still count as beside it.
        lidar_range: The LiDAR's maximum range (a return at it hit nothing).
        camera: The camera's geometry.
    """

    margin: float = 0.5
    horizon: float = 1.5
    shift: float = 1.0
    room: float = 0.3
    reach: float = 1.0
    lidar_range: float = SensorConfig.lidar_range
    camera: SensorConfig = field(default_factory=SensorConfig)

    @cached_property
    def _ego_pixels(self) -> np.ndarray:
        """The camera pixels ``[H, H]`` the ego itself covers (drawn as a vehicle too)."""
        px, py = camera_grid(self.camera)
        return (np.abs(px) < EGO_LENGTH / 2) & (np.abs(py) < EGO_WIDTH / 2)

    def _on_vehicle(self, camera: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """Which ego-frame points ``[N, 2]`` fall on or next to (one pixel) a vehicle
        other than the ego (``[N]`` bool): a LiDAR return there is a car, not the kerb."""
        cfg, h = self.camera, self.camera.camera_size
        grown = np.pad(_camera_vehicles(camera) & ~self._ego_pixels, 1)
        near = np.zeros((h, h), dtype=bool)
        for dr in range(3):
            for dc in range(3):
                near |= grown[dr:dr + h, dc:dc + h]
        row = np.floor(cfg.camera_ego_row - pts[:, 0] / cfg.camera_res).astype(int)
        col = np.floor(h / 2 - pts[:, 1] / cfg.camera_res).astype(int)
        inside = (row >= 0) & (row < h) & (col >= 0) & (col < h)
        out = np.zeros(len(pts), dtype=bool)
        out[inside] = near[row[inside], col[inside]]
        return out

    def _gaps(self, pts: np.ndarray) -> np.ndarray:
        """Gaps (m) between the ego's left and right sides and the nearest of ``pts``
        beside it (inf where none), ``[2]``."""
        beside = pts[np.abs(pts[:, 0]) < EGO_LENGTH / 2 + self.reach]
        gap = np.abs(beside[:, 1]) - EGO_WIDTH / 2
        left = gap[beside[:, 1] > 0]
        right = gap[beside[:, 1] < 0]
        return np.array([left.min() if len(left) else np.inf,
                         right.min() if len(right) else np.inf])

    def __call__(self, plan: Plan, obs: dict[str, np.ndarray], speed: float) -> Plan:
        if speed < 1.0 or repeats_sweep(obs):
            return plan
        pts = lidar_points(obs["lidar"], self.lidar_range)
        gaps = self._gaps(pts)
        cars = self._gaps(pts[self._on_vehicle(obs["camera"], pts)])
        before = self._gaps(lidar_points(obs["lidar_prev"], self.lidar_range))
        with np.errstate(invalid="ignore"):
            closing = np.where(np.isfinite(before) & np.isfinite(cars),
                               (before - cars) / HISTORY_DT, 0.0)
        ttc = np.where(closing > 0.1, cars / np.maximum(closing, 0.1), np.inf)
        danger = (cars < self.margin) | (ttc < self.horizon)
        if not danger.any():
            return plan
        side = int(np.argmax(danger))  # 0: left, 1: right
        calm = braked(plan, 0.0, speed)  # no speeding up
        if danger.all() or gaps[1 - side] < self.room:
            return calm  # squeezed from both sides: no way to move away
        away = -1.0 if side == 0 else 1.0  # left is +y
        return replace(calm, waypoints=plan.waypoints + np.array([0.0, away * self.shift]))


@dataclass
class SmoothRelease:
    """Let go of the brakes gradually: the plan's acceleration may rise by at most
    ``rate`` m/s³ from one frame to the next (braking harder is never held back).

    The brakes above hand on a hard deceleration while a threshold is crossed and the
    network's own plan (often accelerating) the frame after: the ride behind the layer
    jerked at up to 90 m/s³ each time one let go. While the cap holds, the target speed
    is held at the current speed so that the tracker's speed term does not add back
    what the cap takes away.

    Args:
        rate: Largest rise of the acceleration (m/s³).
        dt: Time (s) between frames (the simulator's step).
    """

    rate: float = 10.0
    dt: float = ScenarioConfig.dt
    _last: float = field(default=np.inf, init=False, repr=False)

    def __call__(self, plan: Plan, obs: dict[str, np.ndarray], speed: float) -> Plan:
        cap = self._last + self.rate * self.dt
        if plan.accel > cap:
            plan = replace(plan, accel=cap, target_speed=min(plan.target_speed, speed))
        self._last = plan.accel
        return plan


def safety_layer() -> list[Guard]:
    """Fresh guards for one drive: hold the lane while the next one is taken, keep off the
    car beside, brake for what is in the way, pull out round a standing car the planner
    stopped behind, and let go of the brakes gradually."""
    from .pull_out import PullOut  # it builds on LaneChangeGuard's follower check

    return [LaneChangeGuard(), SideGuard(), EmergencyBrake(), LidarBrake(), PullOut(),
            SmoothRelease()]
