"""The ``driving`` task: simulator drives -> core shards -> fusion planner via the core Trainer."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, Dataset
from torchsuite.core import (
    ConfigError,
    DataConfig,
    DataError,
    OptimConfig,
    StepOutput,
    Task,
    TaskStatus,
    TrainableConfig,
    TrainConfig,
    option,
)
from torchsuite.core.data import (
    DatasetWriter,
    ShardedDataset,
    SplitSpec,
    assign_split,
    read_manifest,
)
from torchsuite.core.data.preprocess import (
    FeatureStats,
    class_loss_weights,
    class_mix,
    load_labels,
    load_stats,
    save_labels,
)

from .closed_loop import Policy
from .drives import (
    MANEUVERS,
    MODEL_INPUTS,
    SENSORS,
    drive_records,
    load_drive,
    maneuver_ids,
    record_drive,
    validate_drive,
)
from .expert import N_WAYPOINTS
from .sim.sensors import SensorConfig
from .sim.world import Scenario, ScenarioConfig, make_scenario

__all__ = ["DrivingConfig", "DrivingTask"]

#: Inputs the planner normalizes with training-split statistics.
NORMALIZED = ("imu", "route", "radar")


@dataclass
class DrivingData(DataConfig):
    """Simulated drives (or your logged drives via ``--source DIR``)."""

    drives: int = option(120, "expert drives to simulate for train/dev/test", ge=1)
    first_drive: int = option(0, "scenario seed of the first drive (another DAgger iteration "
                                 "can visit new scenarios); keep below eval.seed_offset", ge=0)
    target_drives: int = option(10, "drives in the target town/weather (0: no target split)",
                                ge=0)
    town_seed: int = option(0, "town layout of the train/dev/test drives")
    target_town_seed: int = option(1, "town layout of the target split")
    target_fog: float = option(0.3, "camera contrast loss in the target split", ge=0.0, le=1.0)
    target_lidar_dropout: float = option(0.05, "LiDAR ray dropout in the target split",
                                         ge=0.0, le=1.0)
    lanes: int = option(2, "lanes per direction", ge=1, le=4)
    traffic: int = option(10, "moving IDM/MOBIL vehicles per drive", ge=0)
    parked: int = option(2, "parked obstacles per drive", ge=0)
    slow: int = option(1, "slow leaders per drive", ge=0)
    record_every: int = option(2, "keep every N-th 10 Hz frame", ge=1)
    noise: float = option(0.15, "steering impulses per second injected while recording so "
                                "the data shows recoveries (0: clean expert)", ge=0.0)
    min_route: float = option(250.0, "shortest route of a drive (m)", ge=50.0)
    max_seconds: float = option(0.0, "stop each simulated drive after this many seconds "
                                     "(0: at the end of its route)", ge=0.0)
    dagger_run: str = option("", "DAgger: trained driving run(s), comma-separated; the expert "
                                 "and each run's planner take turns driving the drives while "
                                 "the expert labels every state (empty: off)")
    extra_train: list[str] = option(
        [], "more prepared driving data sets whose train splits are added to this one's "
        "(DAgger: aggregate every iteration's data), e.g. data/dagger1,data/dagger2")
    salt: str = option("driving-v1", "split hash salt")
    target_pattern: str = option("", "--source drives whose file stem matches this glob go "
                                     "to the target split")
    overwrite: bool = option(False, "replace an existing prepared data set")
    balance_maneuvers: bool = option(
        False, "re-weight the training loss so cruise/brake/left/right frames (class mix "
        "printed by prepare) each get an equal share")


@dataclass
class DrivingModel:
    """Fusion planner architecture."""

    camera_backbone: str = option("slim", "camera ResNet", choices=("slim", "resnet18"))
    fusion: str = option("transformer", "sensor fusion", choices=("transformer", "concat"))
    width: int = option(64, "feature width", ge=8)
    lidar_res: float = option(1.0, "LiDAR bird's-eye grid resolution (m per cell)", ge=0.05)
    lidar_ahead: float = option(48.0, "LiDAR grid extent ahead of the ego (m)", ge=1.0)
    lidar_behind: float = option(32.0, "LiDAR grid extent behind the ego (m; the grid is "
                                       "square, so this also widens it sideways)", ge=0.0)
    imu: str = option("speed", "IMU channels the planner sees: 'speed' or 'all' (adds the "
                               "accelerations and yaw rate, which a cloned planner tends to "
                               "copy instead of reacting)", choices=("speed", "all"))
    history: bool = option(True, "also give the planner the LiDAR sweep 0.4 s earlier, moved "
                                 "into the current ego frame (shows which cars move and "
                                 "how fast)")
    route_from: float = option(5.0, "hide route points nearer than this (m; the route sensor "
                                    "gives points 5, 10, 20, 30 m ahead): near points on the "
                                    "lane the route wants invite steering at them regardless "
                                    "of traffic", ge=0.0, le=30.0)
    speed_weight: float = option(0.5, "loss weight of the target-speed head", ge=0.0)
    accel_weight: float = option(0.5, "loss weight of the acceleration head", ge=0.0)


@dataclass
class DrivingEval:
    """Closed-loop evaluation (``suite drive evaluate``)."""

    scenarios: int = option(200, "held-out scenarios per policy", ge=1)
    seed_offset: int = option(100000, "scenario seeds start here (prepare uses 0..drives-1)",
                              ge=0)
    max_seconds: float = option(0.0, "stop each scenario after this many simulated seconds "
                                     "(0: at the end of its route or its time limit)", ge=0.0)


@dataclass
class DrivingTrain(TrainConfig):
    """Trainer settings with driving defaults: about 9 minutes on one CPU core."""

    max_steps: int = option(3000, "optimizer steps to run", ge=1)
    eval_every: int = option(500, "evaluate on dev every N steps (0: only at the end)", ge=0)
    eval_batches: int = option(20, "cap on dev batches per evaluation (0: whole dev split)",
                               ge=0)


@dataclass
class DrivingOptim(OptimConfig):
    """Optimizer settings with driving defaults (small model, short schedule)."""

    lr: float = option(1e-3, "peak learning rate", ge=0.0)
    warmup_steps: int = option(30, "linear warm-up steps", ge=0)


@dataclass
class DrivingConfig(TrainableConfig):
    train: DrivingTrain = option(default_factory=DrivingTrain, help="trainer settings")
    optim: DrivingOptim = option(default_factory=DrivingOptim, help="optimizer settings")
    data: DrivingData = field(default_factory=DrivingData)
    model: DrivingModel = field(default_factory=DrivingModel)
    eval: DrivingEval = field(default_factory=DrivingEval)

    def validate(self) -> None:
        d = self.data
        last = d.first_drive + max(d.drives, d.target_drives)
        if last > self.eval.seed_offset:
            raise ConfigError(
                f"data.first_drive + max(data.drives, data.target_drives) = {last} reaches "
                f"eval.seed_offset = {self.eval.seed_offset}: training drives would reuse the "
                f"held-out evaluation scenarios. Lower data.first_drive or raise "
                f"eval.seed_offset.")
        if d.lanes < 2 and d.parked > 0:
            raise ConfigError("data.parked > 0 needs data.lanes >= 2 (parked cars block the "
                              "kerb lane and the only way round is the next lane).")


def _to_tensor(rec: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v)) for k, v in rec.items()}


class DrivingTask(Task[DrivingConfig]):
    """Imitation-learned sensor-fusion planner for the built-in driving simulator."""

    name = "driving"
    Config = DrivingConfig
    description = ("multi-sensor driving simulator, A*/lattice/ACC expert, sensor-fusion "
                   "planner, closed-loop evaluation (`suite drive ...`)")
    status = TaskStatus.READY
    _maneuver_weights: torch.Tensor | None = None  # set on first use (maneuver_weights())

    # ------------------------------------------------------------------ data
    def scenario_config(self, target: bool = False) -> ScenarioConfig:
        d = self.cfg.data
        return ScenarioConfig(town_seed=d.target_town_seed if target else d.town_seed,
                              lanes=d.lanes, traffic=d.traffic, parked=d.parked, slow=d.slow,
                              min_route=d.min_route)

    def eval_scenario(self, seed: int) -> Scenario:
        """Held-out closed-loop scenario ``seed`` (town of the training drives)."""
        sc = make_scenario(seed, self.scenario_config())
        if self.cfg.eval.max_seconds > 0:
            sc.time_limit = min(sc.time_limit, self.cfg.eval.max_seconds)
        return sc

    def sensor_config(self, target: bool = False) -> SensorConfig:
        d = self.cfg.data
        if target:
            return SensorConfig(camera_fog=d.target_fog, lidar_dropout=d.target_lidar_dropout)
        return SensorConfig()

    def _drives(self, source: Path | None) -> Iterator[tuple[str, bool, dict[str, np.ndarray]]]:
        """(drive id, is-target, drive) for every drive, simulated or read from ``source``.

        A generator: one drive is in memory at a time, however many there are.
        """
        d = self.cfg.data
        if source is not None:
            files = sorted(Path(source).glob("*.npz")) if Path(source).is_dir() else [
                Path(source)]
            if not files:
                raise DataError(f"{source}: no .npz drive files found. See "
                                f"plugins/driving/FORMAT.md for the format.")
            for k, f in enumerate(files):
                drive = load_drive(f)
                validate_drive(drive, str(f))
                tgt = bool(d.target_pattern) and fnmatch.fnmatch(f.stem, d.target_pattern)
                print(f"drive {k + 1}/{len(files)} {f.name}: {len(drive['t'])} frames",
                      flush=True)
                yield f.stem, tgt, drive
            return
        # DAgger: drive k is driven by drivers[k % len(drivers)]; None is the expert. Listing
        # every earlier iteration's run visits the states of all of them, which is what
        # aggregating their data sets (Ross et al. 2011) provides, without keeping them.
        drivers: list[Policy | None] = [None]
        if d.dagger_run:
            from .policy import LearnedPolicy, planner_from_run

            for ref in (r.strip() for r in d.dagger_run.split(",")):
                if ref:
                    drivers.append(LearnedPolicy(planner_from_run(self, ref), name=ref))
        seeds = range(d.first_drive, d.first_drive + d.drives)
        plan = [(f"town{d.town_seed}-drive{i}", False, i) for i in seeds]
        plan += [(f"town{d.target_town_seed}-drive{i}", True, i)
                 for i in range(d.first_drive, d.first_drive + d.target_drives)]
        for k, (gid, tgt, seed) in enumerate(plan):
            sc = make_scenario(seed, self.scenario_config(tgt))
            if d.max_seconds > 0:
                sc.time_limit = min(sc.time_limit, d.max_seconds)
            who = drivers[k % len(drivers)]
            drive, res = record_drive(sc, self.sensor_config(tgt), d.record_every, d.noise, who)
            validate_drive(drive, gid)
            by = f" (driven by {who.name})" if who is not None else ""
            print(f"drive {k + 1}/{len(plan)} {gid}: {len(drive['t'])} frames, "
                  f"completion {res.completion:.2f}{by}", flush=True)
            yield gid, tgt, drive

    def prepare(self, source: Path | None = None) -> Path:
        d = self.cfg.data
        if source is not None and not Path(source).exists():
            raise DataError(f"--source {source}: no such file or directory. Give a .npz "
                            f"drive or a directory of them (plugins/driving/FORMAT.md).")
        out = self.data_dir
        spec = SplitSpec(salt=d.salt)
        # streaming statistics of the training split (memory does not grow with the drives)
        stats = {k: FeatureStats() for k in NORMALIZED}
        maneuvers: list[int] = []  # one class id per training frame, in record order
        counts: dict[str, int] = {}
        with DatasetWriter(out, salt=d.salt, overwrite=d.overwrite, shard_bytes=32 << 20,
                           meta={"task": self.name, "source": str(source or "simulator")}) as w:
            for gid, tgt, drive in self._drives(source):
                split = "target" if tgt else assign_split(gid, spec)
                for rec in drive_records(drive):
                    w.add(rec, split=split, group=gid)
                    counts[split] = counts.get(split, 0) + 1
                    if split == "train":
                        stats["imu"].update(rec["imu"][None])
                        stats["route"].update(rec["route"][None])
                        stats["radar"].update(rec["radar"][rec["radar"][:, 3] > 0])
                        maneuvers.append(int(maneuver_ids(
                            torch.as_tensor(rec["waypoints"])[None],
                            torch.as_tensor([float(rec["accel"])]))[0]))
            if not counts.get("train"):
                # Raised inside the writer: it aborts and leaves no half data set behind.
                raise DataError(f"{out}: no training frames were written (frames per split: "
                                f"{counts}); use more drives (--drives N) or longer logged "
                                f"drives.")
            for k, st in stats.items():
                if st.num_features:  # a drive set without radar targets has no radar stats
                    w.add_stats(k, st)
        save_labels(out, "train", "maneuver", np.asarray(maneuvers, np.int64))
        print("frames per split: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        mix = class_mix(maneuvers, classes=range(len(MANEUVERS)))
        print("training maneuver mix: " + ", ".join(
            f"{MANEUVERS[c]} {share:.1%}" for c, share in mix.items())
            + " (data.balance_maneuvers=true equalizes their share of the loss)")
        return out

    def _extra_train_dirs(self) -> list[Path]:
        dirs = [Path(p) for p in self.cfg.data.extra_train]
        for p in dirs:
            if not (p / "manifest.json").is_file() or "train" not in read_manifest(p).splits:
                raise DataError(f"data.extra_train: '{p}' holds no prepared driving train split; "
                                f"give directories written by `suite prepare driving`.")
        return dirs

    def maneuver_weights(self) -> torch.Tensor:
        """Per-class loss weights ``[len(MANEUVERS)]`` from the saved training labels."""
        if self._maneuver_weights is None:
            labels = np.concatenate([load_labels(p, "train", "maneuver") for p in
                                     (self.data_dir, *self._extra_train_dirs())])
            w, _ = class_loss_weights(labels, classes=range(len(MANEUVERS)))
            self._maneuver_weights = w.float()
        return self._maneuver_weights

    def norm_stats(self) -> dict[str, list[float]]:
        """Per-feature mean/std of the training split that the model normalizes with
        (kept in the manifest by the core's preprocess statistics)."""
        manifest = self.data_dir / "manifest.json"
        if not manifest.is_file():
            return {}
        saved = read_manifest(self.data_dir).preprocess
        norm: dict[str, list[float]] = {}
        for k in NORMALIZED:
            if k not in saved:
                continue
            st = load_stats(self.data_dir, k)
            norm[f"{k}_mean"] = np.nan_to_num(st.mean).tolist()
            norm[f"{k}_std"] = (np.nan_to_num(st.std, nan=1.0) + 1e-3).tolist()
        return norm

    def datasets(self) -> dict[str, Dataset[Any]]:
        if not (self.data_dir / "manifest.json").is_file():
            raise DataError(f"no prepared driving data in '{self.data_dir}'; run "
                            f"`suite prepare driving` (data.drives=N sets the number of drives).")
        out: dict[str, Dataset[Any]] = {}
        for split in read_manifest(self.data_dir).splits:
            ds = ShardedDataset(self.data_dir, split, transform=_to_tensor)
            if len(ds):
                out[split] = ds
        extra_dirs = self._extra_train_dirs()
        extra = [ShardedDataset(p, "train", transform=_to_tensor) for p in extra_dirs]
        for where, ds in ((self.data_dir, out.get("train")),
                          *zip(extra_dirs, extra, strict=True)):
            if ds is not None and len(ds):
                missing = [k for k in self.model_inputs if k not in ds[0]]
                if missing:
                    raise DataError(
                        f"{where}: records lack {missing}, which this planner reads (prepared "
                        f"by an older version). Prepare it again (`suite prepare driving "
                        f"--overwrite true ...`) or train with model.history=false.")
        if extra:
            out["train"] = ConcatDataset([out["train"], *extra])
        return out

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        from .model import FusionPlanner  # torchvision loads only when a model is built

        m = self.cfg.model
        try:
            return FusionPlanner(camera_backbone=m.camera_backbone, fusion=m.fusion,
                                 width=m.width, n_waypoints=N_WAYPOINTS, lidar_res=m.lidar_res,
                                 lidar_ahead=m.lidar_ahead, lidar_behind=m.lidar_behind,
                                 imu_channels=(0,) if m.imu == "speed" else (0, 1, 2, 3),
                                 history=m.history, route_from=m.route_from,
                                 stats=self.norm_stats())
        except ValueError as err:  # the architecture rejects these settings; say which
            raise ConfigError(f"model (lidar_res={m.lidar_res}, lidar_ahead={m.lidar_ahead}, "
                              f"lidar_behind={m.lidar_behind}, route_from={m.route_from}): "
                              f"{err}") from err

    @property
    def model_inputs(self) -> tuple[str, ...]:
        """Record fields the planner's ``forward`` takes, in order."""
        return MODEL_INPUTS if self.cfg.model.history else SENSORS

    def _loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
              balanced: bool = False) -> StepOutput:
        wp, speed, accel = model(*(batch[k] for k in self.model_inputs))
        target_wp = batch["waypoints"].float()
        l_wp = F.l1_loss(wp, target_wp)
        l_sp = F.l1_loss(speed, batch["target_speed"].float())
        l_ac = F.l1_loss(accel, batch["accel"].float())
        m = self.cfg.model
        loss = l_wp + m.speed_weight * l_sp + m.accel_weight * l_ac
        if balanced:  # the same terms per frame, weighted by its maneuver class
            w = self.maneuver_weights().to(wp.device)[
                maneuver_ids(target_wp.cpu(), batch["accel"].float().cpu()).to(wp.device)]
            per_frame = ((wp - target_wp).abs().mean((1, 2))
                         + m.speed_weight * (speed - batch["target_speed"].float()).abs()
                         + m.accel_weight * (accel - batch["accel"].float()).abs())
            loss = (w * per_frame).mean()
        ade = (wp - batch["waypoints"].float()).norm(dim=-1).mean()
        return StepOutput(loss, {"wp_l1": l_wp.detach(), "speed_l1": l_sp.detach(),
                                 "accel_l1": l_ac.detach(), "ade_m": ade.detach()},
                          weight=float(wp.shape[0]))

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        return self._loss(model, batch, balanced=self.cfg.data.balance_maneuvers)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        s = SensorConfig()
        sensors = (torch.zeros(1, 3, s.camera_size, s.camera_size, dtype=torch.uint8),
                   torch.full((1, s.lidar_rays), s.lidar_range),
                   torch.zeros(1, s.radar_targets, 4), torch.zeros(1, 4), torch.zeros(1, 10))
        if not self.cfg.model.history:
            return sensors
        return (*sensors, torch.full((1, s.lidar_rays), s.lidar_range), torch.zeros(1, 3))
