"""Traffic behaviour: IDM car following and MOBIL lane changes, vectorized over vehicles.

All functions work on Frenet arrays of the route corridor (``s`` along, ``d`` across)
for every actor at once with ``[N, N]`` pairwise matrices; N is a few dozen, so this is
far cheaper than per-vehicle Python loops.
"""

from __future__ import annotations

import numpy as np

from .road import LANE_WIDTH

__all__ = ["idm_accel", "lane_occupancy", "leader_gaps", "mobil_targets"]

IDM_T = 1.4  # time headway (s)
IDM_S0 = 2.0  # standstill gap (m)
IDM_A = 1.4  # max acceleration (m/s^2)
IDM_B = 2.0  # comfortable deceleration (m/s^2)
MOBIL_P = 0.3  # politeness
MOBIL_THRESHOLD = 0.25  # m/s^2 advantage needed to change
MOBIL_B_SAFE = 3.0  # the new follower may not have to brake harder than this
FREE_GAP = 1e4


def idm_accel(v: np.ndarray, v0: np.ndarray, gap: np.ndarray, dv: np.ndarray) -> np.ndarray:
    """Intelligent Driver Model acceleration.

    Args:
        v: Own speed [N]. v0: desired speed [N]. gap: bumper gap to the leader [N]
            (``FREE_GAP`` when none). dv: own speed minus leader speed [N].
    """
    v0 = np.maximum(v0, 0.1)
    s_star = IDM_S0 + np.maximum(0.0, v * IDM_T + v * dv / (2 * np.sqrt(IDM_A * IDM_B)))
    return IDM_A * (1 - (v / v0) ** 4 - (s_star / np.maximum(gap, 0.1)) ** 2)


def lane_occupancy(d: np.ndarray, width: np.ndarray, lanes: int) -> np.ndarray:
    """``[N, lanes]`` bool: which lanes each actor's footprint overlaps."""
    k = np.arange(lanes)
    lo, hi = -(k + 1) * LANE_WIDTH, -k * LANE_WIDTH
    left, right = d[:, None] + width[:, None] / 2, d[:, None] - width[:, None] / 2
    return (right < hi[None]) & (left > lo[None])


def leader_gaps(
    s: np.ndarray, v: np.ndarray, length: np.ndarray, occ: np.ndarray, lane: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest actor ahead occupying each actor's ``lane``.

    Returns:
        gap [N] (``FREE_GAP`` if none), leader speed [N], leader index [N] (-1 if none).
    """
    n = len(s)
    ds = s[None, :] - s[:, None]  # [i, j] = s_j - s_i
    in_lane = occ[np.arange(n)[None, :], lane[:, None]]  # [i, j]: j occupies lane_i
    ahead = (ds > 0) & in_lane & ~np.eye(n, dtype=bool)
    gap = np.where(ahead, ds - (length[None, :] + length[:, None]) / 2, np.inf)
    j = np.argmin(gap, axis=1)
    g = gap[np.arange(n), j]
    has = np.isfinite(g)
    return np.where(has, g, FREE_GAP), np.where(has, v[j], v), np.where(has, j, -1)


def mobil_targets(
    s: np.ndarray,
    v: np.ndarray,
    v0: np.ndarray,
    length: np.ndarray,
    occ: np.ndarray,
    lane: np.ndarray,
    lanes: int,
    movable: np.ndarray,
) -> np.ndarray:
    """MOBIL decision for every actor: the lane to move to (own lane when staying).

    Args:
        movable: [N] bool, actors allowed to decide now (traffic whose timer is due).
    """
    n = len(s)
    gap, v_lead, _ = leader_gaps(s, v, length, occ, lane)
    a_cur = idm_accel(v, v0, gap, v - v_lead)
    best_gain = np.full(n, MOBIL_THRESHOLD)
    target = lane.copy()
    ds = s[None, :] - s[:, None]  # [i, j] = s_j - s_i
    half = (length[None, :] + length[:, None]) / 2
    not_self = ~np.eye(n, dtype=bool)
    for step in (-1, 1):
        cand = lane + step
        ok = movable & (cand >= 0) & (cand < lanes)
        c = np.clip(cand, 0, lanes - 1)
        in_c = occ[np.arange(n)[None, :], c[:, None]] & not_self  # j occupies i's candidate
        # Blocked if anyone overlaps alongside.
        overlap = in_c & (np.abs(ds) < half + 1.0)
        ok &= ~overlap.any(1)
        ahead = np.where(in_c & (ds > 0), ds - half, np.inf)
        behind = np.where(in_c & (ds < 0), -ds - half, np.inf)
        jl, jf = np.argmin(ahead, 1), np.argmin(behind, 1)
        gl, gf = ahead[np.arange(n), jl], behind[np.arange(n), jf]
        has_l, has_f = np.isfinite(gl), np.isfinite(gf)
        a_new = idm_accel(v, v0, np.where(has_l, gl, FREE_GAP), v - np.where(has_l, v[jl], v))
        vf = v[jf]
        a_f_new = idm_accel(vf, v0[jf], np.where(has_f, gf, FREE_GAP), vf - v)
        ok &= ~has_f | (a_f_new > -MOBIL_B_SAFE)
        a_f_old = a_cur[jf]  # the new follower's acceleration before we cut in
        gain = a_new - a_cur + MOBIL_P * np.where(has_f, a_f_new - a_f_old, 0.0)
        gain += np.where(step > 0, 0.1, 0.0)  # keep-right bias (higher index = kerb side)
        better = ok & (gain > best_gain)
        best_gain = np.where(better, gain, best_gain)
        target = np.where(better, c, target)
    return target
