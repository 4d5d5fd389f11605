"""The learned planner: camera + LiDAR-BEV + radar/IMU/route fusion, GRU waypoint decoder.

Inputs (a batch dict, the sensor fields of a record):
    camera ``uint8 [B, 3, H, H]``, lidar ``[B, R]`` ranges, radar ``[B, K, 4]``,
    imu ``[B, 4]``, route ``[B, 10]``, and (``history=True``) lidar_prev ``[B, R]``, the
    sweep 0.4 s earlier, with prev_pose ``[B, 3]``, where the ego was then (current frame).
Outputs: waypoints ``[B, N, 2]`` (ego frame, m), target speed ``[B]`` (m/s) and
acceleration ``[B]`` (m/s²).

Camera branch: a slim ResNet from torchvision's ``BasicBlock`` (default; fast on CPU) or
``torchvision.models.resnet18(weights=None)``. LiDAR branch: ranges are scattered into a
bird's-eye occupancy grid facing up like the camera raster, but coarser and larger (1 m
cells, 48 m ahead, 32 m behind, 40 m to each side by default); with history, the earlier
sweep moved into the current ego frame is a second channel, so moving cars show as pairs
of blobs; then a small ResNet. Fusion:
``concat`` (pooled features + MLP) or ``transformer`` (TransFuser-style self-attention
over camera tokens, LiDAR tokens and a state token).
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from .sim.sensors import ROUTE_AHEAD

__all__ = ["FusionPlanner", "lidar_bev", "radar_in_path"]

#: Positions the fusion transformer has embeddings for: 1 state + camera + LiDAR tokens.
MAX_TOKENS = 512


def _stage(cin: int, cout: int, stride: int) -> nn.Sequential:
    down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential(BasicBlock(cin, cout, stride, down), BasicBlock(cout, cout))


class SlimResNet(nn.Module):
    """A ResNet from torchvision's BasicBlock with narrow stages: [B,C,H,H] -> [B,w,H/8,H/8]."""

    def __init__(self, in_ch: int, width: int) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(in_ch, w // 4, 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(w // 4), nn.ReLU(inplace=True))
        self.body = nn.Sequential(_stage(w // 4, w // 2, 2), _stage(w // 2, w, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(x))


class ResNet18Features(nn.Module):
    """torchvision resnet18 (random init) up to layer3 + 1x1 projection: -> [B,w,H/16,H/16]."""

    def __init__(self, in_ch: int, width: int) -> None:
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        if in_ch != 3:
            net.conv1 = nn.Conv2d(in_ch, 64, 7, 2, 3, bias=False)
        self.features = nn.Sequential(net.conv1, net.bn1, net.relu, net.layer1, net.layer2,
                                      net.layer3)
        self.proj = nn.Conv2d(256, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The max-pool is skipped: the 64x64 raster is already small.
        return self.proj(self.features(x))


def lidar_bev(ranges: torch.Tensor, size: int, res: float, ego_row: int,
              max_range: float, pose: torch.Tensor | None = None) -> torch.Tensor:
    """Scatter LiDAR returns into an ego-centric occupancy grid like the camera raster.

    Args:
        ranges: ``[B, R]`` ranges at azimuths ``2πk/R``.
        pose: ``[B, 3]`` where the sweep was taken (x, y, yaw in the current ego frame);
            None: taken here.

    Returns:
        ``[B, 1, size, size]`` occupancy (1 where at least one return fell in the cell).
    """
    b, r = ranges.shape
    ang = torch.arange(r, device=ranges.device, dtype=ranges.dtype) * (2 * math.pi / r)
    if pose is not None:
        ang = ang + pose[:, 2:3].to(ranges.dtype)  # [B, R]
    x, y = ranges * torch.cos(ang), ranges * torch.sin(ang)  # [B, R]
    if pose is not None:
        x, y = x + pose[:, 0:1].to(x.dtype), y + pose[:, 1:2].to(y.dtype)
    row = (ego_row - x / res).floor().long()
    col = (size / 2 - y / res).floor().long()
    hit = (ranges < max_range - 1e-3) & (row >= 0) & (row < size) & (col >= 0) & (col < size)
    grid = torch.zeros(b, size * size, device=ranges.device, dtype=ranges.dtype)
    flat = (row.clamp(0, size - 1) * size + col.clamp(0, size - 1))
    grid.scatter_add_(1, flat, hit.to(ranges.dtype))
    return grid.clamp(max=1.0).view(b, 1, size, size)


def radar_in_path(radar: torch.Tensor, half_width: float = 1.8, far: float = 80.0
                  ) -> torch.Tensor:
    """The nearest radar target straight ahead in the ego's lane (ACC object selection).

    Automotive ACC radars report such a primary target; here it is picked from the target
    list so the planner need not learn the polar-to-lane geometry from 8 unordered slots.

    Args:
        radar: ``[B, K, 4]`` targets (range m, azimuth rad, range-rate m/s, valid 0/1).
        half_width: Lateral distance (m) from the ego's axis that still counts as in path.
        far: Range reported when nothing is in path (the radar's reach).

    Returns:
        ``[B, 3]``: longitudinal distance / 30 m, range-rate / 10 m/s, found flag.
    """
    r, az, rr, valid = radar.float().unbind(-1)  # each [B, K]
    x, y = r * torch.cos(az), r * torch.sin(az)
    on = (valid > 0) & (y.abs() < half_width) & (x > 0)
    dist = torch.where(on, x, torch.full_like(x, far))
    k = dist.argmin(1, keepdim=True)  # [B, 1]
    found = on.gather(1, k).float()
    rate = rr.gather(1, k) * found
    return torch.cat([dist.gather(1, k) / 30.0, rate / 10.0, found], 1)  # [B, 3]


class FusionPlanner(nn.Module):
    """Sensor-fusion imitation planner (see module docstring)."""

    def __init__(
        self,
        *,
        camera_backbone: str = "slim",
        fusion: str = "transformer",
        width: int = 64,
        n_waypoints: int = 6,
        camera_size: int = 64,
        camera_res: float = 0.5,
        camera_ego_row: int = 48,
        lidar_range: float = 50.0,
        lidar_res: float = 1.0,
        lidar_ahead: float = 48.0,
        lidar_behind: float = 32.0,
        imu_channels: tuple[int, ...] = (0,),
        history: bool = True,
        route_from: float = 5.0,
        radar_targets: int = 8,
        stats: dict[str, list[float]] | None = None,
    ) -> None:
        super().__init__()
        self.fusion = fusion
        self.n_waypoints = n_waypoints
        # The LiDAR grid has its own resolution and extent: at the camera's 0.5 m it would
        # end 24 m ahead, 2.4 s at 10 m/s, too late to pass a parked car the expert passes
        # at 30 m; and a lane change needs the car closing from 30 m behind, which the
        # expert checks (its follower gap), in view too. Square, ego on the centre column.
        ego_row = round(lidar_ahead / lidar_res)
        size = ego_row + round(lidar_behind / lidar_res)
        tokens = 1 + math.ceil(camera_size / 8) ** 2 + math.ceil(size / 8) ** 2
        if size < 8 or tokens > MAX_TOKENS:
            raise ValueError(f"LiDAR grid of {size}x{size} cells (lidar_ahead + lidar_behind "
                             f"= {lidar_ahead + lidar_behind} m at {lidar_res} m per cell) "
                             f"gives the fusion {tokens} tokens, more than its {MAX_TOKENS} "
                             f"positions (or under 8 cells); change lidar_res or the extents")
        self.bev = (size, lidar_res, ego_row, lidar_range)
        # IMU channels the planner sees (speed, long. accel, lat. accel, yaw rate). The
        # accelerations are left out by default: the expert's jerk-limited acceleration
        # label is almost the IMU's current acceleration, so a planner given it learns to
        # copy it instead of reacting to the road (the copycat/inertia problem of behaviour
        # cloning, Codevilla et al. 2019, Wen et al. 2020).
        mask = torch.zeros(4)
        mask[list(imu_channels)] = 1.0
        self.register_buffer("imu_mask", mask, persistent=False)
        # Route points nearer than ``route_from`` are hidden. Route points on the lane the
        # route wants, a few metres ahead, are a shortcut: a network can steer at them and
        # ignore the car in that lane (the target-point bias of Jaeger et al. 2023). The
        # decoder is guided by the nearest point shown at least 10 m ahead.
        seen = [k for k, ahead in enumerate(ROUTE_AHEAD) if ahead >= route_from]
        if not seen:
            raise ValueError(f"route_from={route_from} m hides every route point "
                             f"{ROUTE_AHEAD}; use at most {ROUTE_AHEAD[-1]}")
        rmask = torch.ones(10)  # x, y of each route point, then speed limit and length left
        rmask[:8] = torch.tensor([float(a >= route_from) for a in ROUTE_AHEAD]).repeat_interleave(2)
        self.register_buffer("route_mask", rmask, persistent=False)
        g = next(k for k in seen if ROUTE_AHEAD[k] >= 10.0)
        self.goal = (2 * g, ROUTE_AHEAD[g])
        backbone = ResNet18Features if camera_backbone == "resnet18" else SlimResNet
        self.camera = backbone(3, width)
        self.history = history
        self.lidar = SlimResNet(2 if history else 1, width)
        stats = stats or {}
        for name, dim in (("imu", 4), ("route", 10), ("radar", 4)):
            mean = torch.tensor(stats.get(f"{name}_mean", [0.0] * dim), dtype=torch.float32)
            std = torch.tensor(stats.get(f"{name}_std", [1.0] * dim), dtype=torch.float32)
            self.register_buffer(f"{name}_mean", mean)
            self.register_buffer(f"{name}_std", std.clamp(min=1e-3))
        state_in = 4 + 10 + radar_targets * 4 + 3
        self.state = nn.Sequential(nn.Linear(state_in, 2 * width), nn.ReLU(),
                                   nn.Linear(2 * width, width))
        if fusion == "transformer":
            self.type_emb = nn.Parameter(torch.zeros(3, width))
            self.pos_emb = nn.Parameter(torch.randn(1, MAX_TOKENS, width) * 0.02)
            layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.fuser = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            fused_dim = 2 * width
        else:
            fused_dim = 3 * width
        self.head = nn.Sequential(nn.Linear(fused_dim, 2 * width), nn.ReLU())
        self.gru = nn.GRUCell(2 + 2, 2 * width)
        self.wp_out = nn.Linear(2 * width, 2)
        self.speed_out = nn.Linear(2 * width, 2)

    def _norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return (x - getattr(self, f"{name}_mean")) / getattr(self, f"{name}_std")

    def forward(self, camera: torch.Tensor, lidar: torch.Tensor, radar: torch.Tensor,
                imu: torch.Tensor, route: torch.Tensor, lidar_prev: torch.Tensor | None = None,
                prev_pose: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = camera.shape[0]
        cam = self.camera(camera.float() / 255.0)  # [B, w, h, h]
        size, res, ego_row, max_range = self.bev
        bev = lidar_bev(lidar.float(), size, res, ego_row, max_range)  # [B, 1, H, H]
        if self.history:
            if lidar_prev is None or prev_pose is None:
                raise ValueError("this planner was built with history=True: pass lidar_prev "
                                 "and prev_pose (drives.MODEL_INPUTS)")
            past = lidar_bev(lidar_prev.float(), size, res, ego_row, max_range,
                             prev_pose.float())
            bev = torch.cat([bev, past], 1)  # [B, 2, H, H]
        lid = self.lidar(bev)
        valid = radar[..., 3:4].float()
        rad = self._norm("radar", radar.float()) * valid  # [B, K, 4], empty slots zero
        rad = torch.cat([rad[..., :3], valid], -1)
        imu = self._norm("imu", imu.float()) * self.imu_mask
        route_in = self._norm("route", route.float()) * self.route_mask
        state = torch.cat([imu, route_in, rad.flatten(1),
                           radar_in_path(radar)], 1)
        st = self.state(state)  # [B, w]
        if self.fusion == "transformer":
            ct = cam.flatten(2).transpose(1, 2) + self.type_emb[0]  # [B, Nc, w]
            lt = lid.flatten(2).transpose(1, 2) + self.type_emb[1]  # [B, Nl, w]
            tokens = torch.cat([st[:, None] + self.type_emb[2], ct, lt], 1)
            tokens = tokens + self.pos_emb[:, : tokens.shape[1]]
            out = self.fuser(tokens)  # [B, 1+Nc+Nl, w]
            fused = torch.cat([out[:, 0], out[:, 1:].mean(1)], 1)  # [B, 2w]
        else:
            fused = torch.cat([cam.mean((2, 3)), lid.mean((2, 3)), st], 1)  # [B, 3w]
        h = self.head(fused)  # [B, 2w]
        k, ahead = self.goal
        goal = route[:, k:k + 2].float() / ahead  # [B, 2] the guiding route point, ~unit
        wp = torch.zeros(b, 2, device=camera.device)
        wps = []
        for _ in range(self.n_waypoints):
            h = self.gru(torch.cat([wp / 10.0, goal], 1), h)
            wp = wp + self.wp_out(h)
            wps.append(wp)
        sp = self.speed_out(self.head(fused))
        return torch.stack(wps, 1), sp[:, 0], sp[:, 1]
