"""``suite drive evaluate`` and ``suite drive replay``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from torchsuite.core import SuiteError
from torchsuite.core.cli_args import add_config_arguments, task_from_run

from .closed_loop import run_scenario, summarize
from .evaluation import POLICIES, ablation_names, drive_policies, make_policy
from .plots import plot_evaluation
from .policy import load_planner
from .sim.world import RULES

__all__ = ["configure_evaluate", "configure_replay", "evaluate", "replay"]

COLUMNS = (
    ("driving_score", "score", "{:.3f}"),
    ("route_completion", "compl", "{:.3f}"),
    ("collisions_per_km", "coll/km", "{:.2f}"),
    ("offroad_per_km", "offrd/km", "{:.2f}"),
    ("jerk_rms", "jerk_rms", "{:.2f}"),
    ("lat_acc_max", "latacc_max", "{:.2f}"),
    ("headway_mean", "headway_s", "{:.2f}"),
    ("ttc_min", "ttc_min_s", "{:.2f}"),
    ("speed_err", "v_err", "{:.2f}"),
    ("km", "km", "{:.2f}"),
)


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A markdown table: one row per policy."""
    head = "| policy | " + " | ".join(c[1] for c in COLUMNS) + " |"
    sep = "|---" * (len(COLUMNS) + 1) + "|"
    lines = [head, sep]
    for name, m in rows.items():
        cells = [fmt.format(m[key]) if math.isfinite(m[key]) else str(m[key])
                 for key, _, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_", required=True, help="run directory or name")
    p.add_argument("--scenarios", type=int, default=None,
                   help="held-out scenarios per policy (default: eval.scenarios)")
    p.add_argument("--no-ablations", action="store_true", help="skip the sensor ablations")
    p.add_argument("--ablation-scenarios", type=int, default=None,
                   help="scenarios for each sensor ablation (default: --scenarios); the "
                        "first K of the same held-out scenarios")
    p.add_argument("--policies", default="learned,learned+safety,expert,baseline",
                   help="comma list among learned, learned+safety (the planner behind the "
                        "rule-based safety layer of safety.py, pull_out.py's recovery "
                        "included), expert, baseline")
    p.add_argument("--workers", type=int, default=1,
                   help="processes driving scenarios at once (e.g. the number of free "
                        "cores); the table is that of 1 (learned rows up to rounding)")
    p.add_argument("--report", default="drive_eval",
                   help="file name stem of the report in the run's samples/ (e.g. drive_val "
                        "for validation scenarios, so the held-out report stays put)")
    add_config_arguments(p)


def evaluate(args: argparse.Namespace) -> int:
    task, run = task_from_run(args.from_, args, "driving")
    n = args.scenarios or task.cfg.eval.scenarios
    if n < 1:
        raise SuiteError(f"--scenarios must be >= 1, got {n}.")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.report) or args.report.startswith("."):
        raise SuiteError(f"--report {args.report!r}: give a plain file name stem (letters, "
                         f"digits, '_', '-', '.'), e.g. drive_val.")
    if args.workers < 1:
        raise SuiteError(f"--workers must be >= 1, got {args.workers}.")
    wanted = [p.strip() for p in args.policies.split(",") if p.strip()]
    bad = [p for p in wanted if p not in POLICIES]
    if bad:
        raise SuiteError(f"--policies: unknown {bad}; choose among {', '.join(POLICIES)}.")
    learned = any(p.startswith("learned") for p in wanted)
    seeds = [task.cfg.eval.seed_offset + i for i in range(n)]
    todo: dict[str, list[int]] = {p: seeds for p in wanted}
    if learned and not args.no_ablations:
        for name in ablation_names():
            todo[name] = seeds[: args.ablation_scenarios or n]
    results = drive_policies(task, run if learned else None, todo, workers=args.workers)
    rows = {name: summarize(res) for name, res in results.items()}
    scores = {name: [r.score for r in res] for name, res in results.items()}
    out = run / "samples"
    report = out / f"{args.report}.json"
    setting = _setting(task, seeds)
    rows, scores = _with_earlier_rows(report, setting, rows, scores)
    table = format_table(rows)
    print(table)
    compared = [k for k in POLICIES if k.startswith("learned") and k in rows and "expert" in rows]
    for name in compared:
        e, lrn = rows["expert"], rows[name]
        ratio = lrn["driving_score"] / max(e["driving_score"], 1e-9)
        print(f"{name}/expert driving score = {ratio:.3f} (goal >= 0.90); collisions/km "
              f"{lrn['collisions_per_km']:.2f} vs expert {e['collisions_per_km']:.2f} "
              f"(goal <= 2x)")
    out.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(
        {"scenarios": n, "seeds": [seeds[0], seeds[-1]], "setting": setting, "rows": rows,
         "scores": scores}, indent=1))
    report.with_suffix(".md").write_text(table + "\n")
    written = [report, report.with_suffix(".md")]
    written += plot_evaluation(rows, scores, out, args.report)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _setting(task: Any, seeds: list[int]) -> dict[str, Any]:
    """What decides an evaluation's scenarios and sensors (JSON-plain, to compare)."""
    return json.loads(json.dumps({
        "rules": RULES, "seeds": seeds, "max_seconds": task.cfg.eval.max_seconds,
        "scenario": dataclasses.asdict(task.scenario_config()),
        "sensors": dataclasses.asdict(task.sensor_config())}))


def _with_earlier_rows(path: Path, setting: dict[str, Any], rows: dict[str, Any],
                       scores: dict[str, list[float]]
                       ) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """This evaluation's rows after the rows of an earlier one on the same scenarios that
    it did not redo (``--policies learned`` after a full run keeps the expert's row); an
    earlier report (``path``) on other scenarios is moved aside, not overwritten."""
    try:
        earlier = json.loads(path.read_text())
    except FileNotFoundError:
        return rows, scores
    except (OSError, json.JSONDecodeError):
        earlier = {}
    if isinstance(earlier, dict) and earlier.get("setting") == setting:
        kept = [k for k in earlier.get("rows", {}) if k not in rows]
        if kept:
            print(f"kept {', '.join(kept)} from the earlier evaluation of these scenarios "
                  f"in {path}")
        names = dict.fromkeys([*earlier.get("rows", {}), *rows])  # earlier order, then new
        return ({k: rows[k] if k in rows else earlier["rows"][k] for k in names},
                {k: scores[k] if k in scores else earlier.get("scores", {}).get(k, [])
                 for k in names})
    k = 1
    while (aside := path.with_name(f"{path.stem}.earlier-{k}.json")).exists():
        k += 1
    path.rename(aside)
    if path.with_suffix(".md").exists():
        path.with_suffix(".md").rename(aside.with_suffix(".md"))
    print(f"moved the earlier evaluation (other scenarios or settings) to {aside}")
    return rows, scores


def configure_replay(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_", required=True, help="run directory or name")
    p.add_argument("--scenario", type=int, default=0, help="held-out scenario index K")
    p.add_argument("--policy", default="learned", choices=POLICIES)
    p.add_argument("--every", type=int, default=2, help="keep every N-th frame in the GIF")
    add_config_arguments(p)


def replay(args: argparse.Namespace) -> int:
    from .replay import render_frame

    task, run = task_from_run(args.from_, args, "driving")
    model = load_planner(task, run) if args.policy.startswith("learned") else None
    policy = make_policy(args.policy, model)
    seed = task.cfg.eval.seed_offset + args.scenario
    sc = task.eval_scenario(seed)
    frames = []

    def grab(world: Any, obs: dict[str, np.ndarray], plan: Any, accel: float) -> None:
        if world.step_count % max(args.every, 1) == 0:
            frames.append(render_frame(world, obs, plan))

    res = run_scenario(sc, policy, task.sensor_config(), on_step=grab)
    if not frames:
        raise SuiteError("the replay recorded no frames; use a smaller --every.")
    name = args.policy.replace("+", "_")
    out = run / "samples" / f"replay_{name}_{args.scenario}.gif"
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:],
                   duration=int(100 * max(args.every, 1)), loop=0)
    print(f"scenario {args.scenario} (seed {seed}): completion {res.completion:.2f}, "
          f"score {res.score:.3f}, collisions {res.collisions_vehicle + res.collisions_static}")
    print(f"wrote {out} ({len(frames)} frames)")
    return 0
