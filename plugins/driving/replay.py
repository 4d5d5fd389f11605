"""Bird's-eye replay frames (PIL): road, traffic, ego, planned path and the camera inset."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .expert import Plan
from .sim.road import LANE_WIDTH
from .sim.world import EGO_LENGTH, EGO_WIDTH, World

__all__ = ["render_frame"]

SIZE = 320
SCALE = 4.0  # pixels per metre


def _box(cx: float, cy: float, yaw: float, length: float, width: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    f, lft = np.array([c, s]) * length / 2, np.array([-s, c]) * width / 2
    ctr = np.array([cx, cy])
    return np.stack([ctr + f + lft, ctr + f - lft, ctr - f - lft, ctr - f + lft])


def render_frame(world: World, obs: dict[str, np.ndarray], plan: Plan) -> Image.Image:
    """One frame centred on the ego, north up."""
    e, path = world.ego, world.path
    img = Image.new("RGB", (SIZE, SIZE), (40, 90, 40))
    draw = ImageDraw.Draw(img)

    def px(pts: np.ndarray) -> list[tuple[float, float]]:
        rel = (pts - np.array([e.x, e.y])) * SCALE
        return [(SIZE / 2 + x, SIZE / 2 - y) for x, y in rel]

    s = np.arange(max(e.s - 60, 0), min(e.s + 60, path.length), 1.0)
    if len(s) > 1:
        half = path.lanes * LANE_WIDTH
        left, _ = path.to_world(s, np.full(len(s), half))
        right, _ = path.to_world(s, np.full(len(s), -half))
        draw.polygon(px(np.concatenate([left, right[::-1]])), fill=(70, 70, 70))
        for k in range(-path.lanes, path.lanes + 1):
            line, _ = path.to_world(s, np.full(len(s), k * LANE_WIDTH))
            draw.line(px(line), fill=(230, 200, 0) if k == 0 else (200, 200, 200), width=1)
    xy, hd, length, width, _ = world.traffic_world()
    for i in range(len(hd)):
        color = (200, 60, 60) if world.tr["kind"][i] == 1 else (80, 140, 230)
        draw.polygon(px(_box(xy[i, 0], xy[i, 1], hd[i], length[i], width[i])), fill=color)
    draw.polygon(px(_box(e.x, e.y, e.yaw, EGO_LENGTH, EGO_WIDTH)), fill=(250, 250, 250))
    c, sn = np.cos(e.yaw), np.sin(e.yaw)
    wp = plan.waypoints
    world_wp = np.stack([e.x + wp[:, 0] * c - wp[:, 1] * sn, e.y + wp[:, 0] * sn + wp[:, 1] * c],
                        -1)
    pts = px(np.concatenate([[[e.x, e.y]], world_wp]))
    draw.line(pts, fill=(255, 0, 255), width=2)
    for p in pts[1:]:
        draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=(255, 0, 255))
    cam = Image.fromarray(np.transpose(obs["camera"], (1, 2, 0))).resize((96, 96))
    img.paste(cam, (4, 4))
    draw.rectangle([3, 3, 100, 100], outline=(255, 255, 255))
    draw.text((4, SIZE - 14), f"t={world.t:5.1f}s v={e.v:4.1f}m/s", fill=(255, 255, 255))
    return img
