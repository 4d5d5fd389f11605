"""Drives: recording the expert in the simulator, the on-disk drive format, its validator,
and turning drives into training records (sensor frames + labels).

A drive is a dict of arrays with a leading time axis ``T`` (see FORMAT.md); the
simulator produces exactly what a user's logged drive must contain, so both go
through :func:`validate_drive` and :func:`drive_records`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchsuite.core import DataError

from .closed_loop import DriveResult, Policy, run_scenario
from .expert import N_WAYPOINTS, TARGET_SPEED_DT, WAYPOINT_DT, ExpertPolicy, Plan
from .sim.sensors import SensorConfig, sensor_shapes
from .sim.world import Scenario, World

__all__ = [
    "HISTORY_DT",
    "MANEUVERS",
    "MODEL_INPUTS",
    "OPTIONAL_FIELDS",
    "SENSORS",
    "STATE_FIELDS",
    "SteeringNoise",
    "drive_records",
    "history_index",
    "load_drive",
    "maneuver_ids",
    "record_drive",
    "relative_pose",
    "save_drive",
    "validate_drive",
]

SENSORS = ("camera", "lidar", "radar", "imu", "route")
#: How far back the planner's second LiDAR sweep is (s). One sweep shows where the cars
#: are, two show where they are going: whether the car in the next lane is parked or
#: closing at 12 m/s decides whether a gap is one.
HISTORY_DT = 0.4
#: The planner's inputs, in its ``forward`` order: the sensors, then the earlier LiDAR
#: sweep and that sweep's ego pose in the current ego frame (x, y, yaw) from localization.
MODEL_INPUTS = (*SENSORS, "lidar_prev", "prev_pose")
#: Required non-sensor per-frame fields: timestamp (s), ego pose (x, y, yaw), speed (m/s).
STATE_FIELDS: dict[str, tuple[int, ...]] = {"t": (), "pose": (3,), "speed": ()}
#: Optional label fields. Without them labels come from the drive's own future poses
#: and speeds (what a logged human drive has); the simulator stores the expert's plan.
OPTIONAL_FIELDS: dict[str, tuple[int, ...]] = {
    "accel_cmd": (),
    "plan_waypoints": (N_WAYPOINTS, 2),
    "plan_speed": (),
}


class SteeringNoise:
    """Noise injection for recording (Codevilla et al. 2018): short steering and braking
    impulses that push the car off its lane so the data shows the expert recovering.

    Args:
        seed: Drive seed (the noise is reproducible).
        rate: Expected impulses per second.
        steer_std: Std of the steering offset (rad) of an impulse.
        duration: Impulse length (s).
    """

    def __init__(self, seed: int, rate: float = 0.15, steer_std: float = 0.06,
                 duration: float = 0.8) -> None:
        self.rng = np.random.default_rng([seed, 23])
        self.rate, self.steer_std, self.duration = rate, steer_std, duration
        self.left = 0.0
        self.offset = (0.0, 0.0)

    def __call__(self, world: World, accel: float, steer: float) -> tuple[float, float]:
        if self.left <= 0 and self.rng.random() < self.rate * world.dt:
            self.left = self.duration
            self.offset = (float(self.rng.normal(0, 0.8)),
                           float(self.rng.normal(0, self.steer_std)))
        if self.left <= 0:
            return accel, steer
        self.left -= world.dt
        # Triangular impulse: ramps up then down, like a driver's correction being late.
        w = 1.0 - abs(2 * self.left / self.duration - 1.0)
        return accel + w * self.offset[0], steer + w * self.offset[1]


class _ExpertLabelled:
    """DAgger: ``driver`` drives, the expert is asked what it would do in every state."""

    uses_sensors = True
    name = "dagger"

    def __init__(self, driver: Policy) -> None:
        self.driver, self.expert = driver, ExpertPolicy()
        self.label: Plan | None = None

    def act(self, world: World, obs: dict[str, np.ndarray]) -> Plan:
        self.label = self.expert.act(world, obs)
        return self.driver.act(world, obs)


def record_drive(scenario: Scenario, sensor_cfg: SensorConfig, every: int = 2,
                 noise: float = 0.0, driver: Policy | None = None
                 ) -> tuple[dict[str, np.ndarray], DriveResult]:
    """Drive ``scenario`` with the expert, keeping every ``every``-th frame.

    Args:
        scenario: What to drive.
        sensor_cfg: Sensor noise/resolution/rates.
        every: Keep every N-th simulation step (10 Hz / N).
        noise: Steering-impulse rate (per second) injected into the executed commands;
            0 records the clean expert.
        driver: Another policy that drives instead of the expert (DAgger: a trained
            planner visits the states it gets itself into); the labels stay the
            expert's plan for each visited state.

    Returns:
        The drive (format of FORMAT.md, with the expert's plan as labels) and the
        closed-loop result.
    """
    fields = (*SENSORS, *STATE_FIELDS, *OPTIONAL_FIELDS)
    frames: dict[str, list[np.ndarray]] = {k: [] for k in fields}

    policy: Policy = ExpertPolicy() if driver is None else _ExpertLabelled(driver)

    def keep(world: World, obs: dict[str, np.ndarray], plan: Plan, accel: float) -> None:
        if world.step_count % every:
            return
        if isinstance(policy, _ExpertLabelled) and policy.label is not None:
            plan = policy.label
        for k in SENSORS:
            frames[k].append(obs[k])
        e = world.ego
        frames["t"].append(np.float64(world.t))
        frames["pose"].append(np.array([e.x, e.y, e.yaw]))
        frames["speed"].append(np.float64(e.v))
        frames["accel_cmd"].append(np.float32(plan.accel))
        frames["plan_waypoints"].append(plan.waypoints.astype(np.float32))
        frames["plan_speed"].append(np.float32(plan.target_speed))

    perturb = SteeringNoise(scenario.seed, rate=noise) if noise > 0 else None
    result = run_scenario(scenario, policy, sensor_cfg, on_step=keep, perturb=perturb,
                          sense_every=every)
    drive = {k: np.stack(v) for k, v in frames.items() if v}
    return drive, result


def validate_drive(drive: dict[str, np.ndarray], where: str,
                   shapes: dict[str, tuple[int, ...]] | None = None) -> None:
    """Check a drive against the format; raise :class:`DataError` naming file and field.

    Checks, in order: required fields present, at least 2 frames, every field shaped
    ``(T, *per_frame)`` and numeric and finite, timestamps strictly increasing, camera
    ``uint8``, LiDAR ranges >= 0, radar validity flags 0/1.

    Args:
        drive: Arrays by field name.
        where: The file (or drive id) for the message.
        shapes: Per-frame sensor shapes expected (default: the default sensor config).
    """
    shapes = shapes or sensor_shapes(SensorConfig())
    required = {**shapes, **STATE_FIELDS}
    missing = [k for k in required if k not in drive]
    if missing:
        raise DataError(
            f"{where}: missing field(s) {missing}. A drive needs {sorted(required)} "
            f"(optional: {sorted(OPTIONAL_FIELDS)}; see plugins/driving/FORMAT.md); add them "
            f"or record with all sensors on."
        )
    t = np.asarray(drive["t"])
    n = len(t) if t.ndim else 0
    if n < 2:
        raise DataError(f"{where}: field 't' has {n} frame(s); a drive needs at least 2.")
    expected = {**required, **{k: v for k, v in OPTIONAL_FIELDS.items() if k in drive}}
    for k, shape in expected.items():
        arr = np.asarray(drive[k])
        if arr.shape != (n, *shape):
            raise DataError(
                f"{where}: field '{k}' has shape {arr.shape}, expected {(n, *shape)} "
                f"(T={n} frames from 't', then the per-frame shape). Fix the recording or the "
                f"sensor settings so the shapes match."
            )
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise DataError(f"{where}: field '{k}' has dtype {arr.dtype}, expected numbers.")
        finite = np.isfinite(arr.reshape(n, -1).astype(np.float64)).all(1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise DataError(f"{where}: field '{k}' has NaN/inf at frame {bad}; drop or repair "
                            f"that frame.")
    tt = t.astype(np.float64)
    back = np.flatnonzero(np.diff(tt) <= 0)
    if len(back):
        i = int(back[0])
        raise DataError(
            f"{where}: timestamps out of order at frame {i + 1}: t[{i}]={tt[i]:.3f} s, "
            f"t[{i + 1}]={tt[i + 1]:.3f} s. Timestamps must strictly increase; sort the frames "
            f"or drop duplicates."
        )
    cam = np.asarray(drive["camera"])
    if cam.dtype != np.uint8:
        raise DataError(f"{where}: field 'camera' must be uint8 (0..255), got {cam.dtype}; "
                        f"scale to 0..255 and cast with .astype(np.uint8).")
    lid = np.asarray(drive["lidar"])
    if (lid < 0).any():
        i = int(np.flatnonzero((lid < 0).any(1))[0])
        raise DataError(f"{where}: field 'lidar' has a negative range at frame {i}; ranges are "
                        f"metres >= 0 (no return = the maximum range).")
    flags = np.asarray(drive["radar"])[..., 3]
    if not np.isin(flags, (0, 1)).all():
        i = int(np.flatnonzero(~np.isin(flags, (0, 1)).all(1))[0])
        raise DataError(f"{where}: field 'radar' column 3 (valid flag) must be 0 or 1; frame "
                        f"{i} has {sorted(set(flags[i].tolist()))}.")


def load_drive(path: Path) -> dict[str, np.ndarray]:
    """Read one ``.npz`` drive file (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: cannot read as a .npz drive ({e}). See "
                        f"plugins/driving/FORMAT.md.") from e


def save_drive(path: Path, drive: dict[str, np.ndarray], *, overwrite: bool = False) -> Path:
    """Write a drive as compressed ``.npz`` (refuses to replace an existing file)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists; choose another name or delete it first.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **drive)
    tmp.replace(path)
    return path


def future_labels(drive: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels from the drive itself: waypoints (ego frame) at +0.5 s .. +3 s, speed at +1 s.

    Returns:
        waypoints ``[T', N, 2]``, target speed ``[T']`` for the frames that have a full
        future (``T'`` leading frames), and their indices ``[T']``.
    """
    t = np.asarray(drive["t"], dtype=np.float64)
    pose, speed = np.asarray(drive["pose"], np.float64), np.asarray(drive["speed"], np.float64)
    horizon = N_WAYPOINTS * WAYPOINT_DT
    valid = np.flatnonzero(t + horizon <= t[-1] + 1e-6)
    if not len(valid):
        return np.zeros((0, N_WAYPOINTS, 2)), np.zeros(0), valid
    q = t[valid][:, None] + np.arange(1, N_WAYPOINTS + 1) * WAYPOINT_DT  # [T', N]
    fx, fy = np.interp(q, t, pose[:, 0]), np.interp(q, t, pose[:, 1])
    x0, y0, yaw = pose[valid, 0:1], pose[valid, 1:2], pose[valid, 2:3]
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy = fx - x0, fy - y0
    wp = np.stack([dx * c + dy * s, -dx * s + dy * c], -1)
    v1 = np.interp(t[valid] + TARGET_SPEED_DT, t, speed)
    return wp, v1, valid


def relative_pose(past: np.ndarray, now: np.ndarray) -> np.ndarray:
    """Pose ``past`` (x, y, yaw in the world) expressed in the ego frame of pose ``now``.

    Args:
        past: ``[..., 3]`` world poses.
        now: ``[..., 3]`` world poses (broadcast against ``past``).

    Returns:
        ``[..., 3]`` float32: x forward, y left (m), yaw (rad, wrapped to [-π, π)).
    """
    dx, dy = past[..., 0] - now[..., 0], past[..., 1] - now[..., 1]
    c, s = np.cos(now[..., 2]), np.sin(now[..., 2])
    dyaw = (past[..., 2] - now[..., 2] + np.pi) % (2 * np.pi) - np.pi
    return np.stack([dx * c + dy * s, -dx * s + dy * c, dyaw], -1).astype(np.float32)


def history_index(t: np.ndarray) -> np.ndarray:
    """For every frame, the latest frame at least :data:`HISTORY_DT` older (frame 0 for
    the drive's first frames, as a planner starting up has only its first sweep)."""
    j = np.searchsorted(t, t - HISTORY_DT + 1e-6, side="right") - 1
    return np.clip(j, 0, None)


def drive_records(drive: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """One training record per labelled frame: sensors + waypoints, target speed, accel.

    With the expert's plan stored (simulated drives) every frame is labelled by it;
    otherwise labels come from the drive's own future (frames without a full 3 s future
    are dropped) and the acceleration from the speed trace. Each record also carries the
    LiDAR sweep :data:`HISTORY_DT` earlier and that frame's pose in the current ego frame.
    """
    if "plan_waypoints" in drive and "plan_speed" in drive:
        idx = np.arange(len(drive["t"]))
        wp = np.asarray(drive["plan_waypoints"], np.float32)
        v1 = np.asarray(drive["plan_speed"], np.float32)
    else:
        wp, v1, idx = future_labels(drive)
    if "accel_cmd" in drive:
        acc = np.asarray(drive["accel_cmd"], np.float32)
    else:
        acc = np.gradient(np.asarray(drive["speed"], np.float64),
                          np.asarray(drive["t"], np.float64)).astype(np.float32)
    pose = np.asarray(drive["pose"], np.float64)
    prev = history_index(np.asarray(drive["t"], np.float64))
    out = []
    for j, i in enumerate(idx):
        rec = {k: np.asarray(drive[k][i]) for k in SENSORS}
        rec["lidar_prev"] = np.asarray(drive["lidar"][prev[i]], np.float16)
        rec["prev_pose"] = relative_pose(pose[prev[i]], pose[i])
        rec["camera"] = rec["camera"].astype(np.uint8)
        rec["lidar"] = rec["lidar"].astype(np.float16)
        rec["radar"] = rec["radar"].astype(np.float32)
        rec["imu"] = rec["imu"].astype(np.float32)
        rec["route"] = rec["route"].astype(np.float32)
        rec["waypoints"] = np.asarray(wp[j], np.float32)
        rec["target_speed"] = np.float32(v1[j])
        rec["accel"] = np.float32(acc[i])
        out.append(rec)
    return out


#: Maneuver classes of a labelled frame, for class balancing (index = class id).
MANEUVERS = ("cruise", "brake", "left", "right")


def maneuver_ids(waypoints: torch.Tensor, accel: torch.Tensor) -> torch.Tensor:
    """Maneuver class per frame from its labels: braking harder than 1 m/s², else a
    turn or lane change when the last planned waypoint lies over 2 m to a side
    (ego frame: x forward, y left), else cruising.

    Args:
        waypoints: ``[B, W, 2]`` planned waypoints.
        accel: ``[B]`` acceleration labels (m/s²).

    Returns:
        ``[B]`` int64 indices into :data:`MANEUVERS`.
    """
    lateral = waypoints[:, -1, 1]
    ids = torch.zeros(lateral.shape, dtype=torch.long)
    ids = torch.where(lateral > 2.0, 2, ids)
    ids = torch.where(lateral < -2.0, 3, ids)
    return torch.where(accel < -1.0, 1, ids)
