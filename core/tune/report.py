"""What a study leaves behind: trials table, best config, plot, summary."""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..config import to_toml

if TYPE_CHECKING:
    from .study import Tuner

__all__ = ["format_table", "param_importances", "trial_rows", "write_reports"]


def _metric_of(trial: FrozenTrial) -> float | None:
    """The completed value, or a pruned trial's last intermediate value."""
    if trial.state == TrialState.COMPLETE:
        return trial.value
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


def trial_rows(study: optuna.Study, metric: str, keys: list[str]) -> list[dict[str, Any]]:
    """One row per trial: number, state, metric, each param, run directory, error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name.lower(),
                               metric: _metric_of(t)}
        row.update({k: t.params.get(k) for k in keys})
        row["run_dir"] = t.user_attrs.get("run_dir", "")
        row["error"] = t.user_attrs.get("error", "")
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]], best: int | None = None) -> str:
    """A fixed-width text table (the best trial marked with ``*``)."""
    if not rows:
        return "(no trials)"
    cols = [c for c in rows[0] if c not in ("run_dir", "error")]

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.5g}" if isinstance(v, float) else str(v)

    text = [[cell(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in text)) for i, c in enumerate(cols)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    for r, t in zip(rows, text):
        mark = "* " if r["trial"] == best else "  "
        lines.append(mark + "  ".join(v.ljust(w) for v, w in zip(t, widths)))
    return "\n".join(lines)


def param_importances(study: optuna.Study) -> dict[str, float]:
    """fANOVA importances (Optuna's default evaluator); empty when not computable yet."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def _plot(study: optuna.Study, tuner: Tuner, importances: dict[str, float], path: Path) -> bool:
    """Write the PNG; ``False`` (nothing written) without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = tuner.settings.metric
    minimize = tuner.settings.direction == "min"
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    trials = study.get_trials(deepcopy=False)
    for state, marker, color in ((TrialState.COMPLETE, "o", "tab:blue"),
                                 (TrialState.PRUNED, "x", "tab:gray")):
        pts = [(t.number, _metric_of(t)) for t in trials if t.state == state]
        pts = [(n, v) for n, v in pts if v is not None and math.isfinite(v)]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, color=color, label=state.name.lower())
    shown = [v for t in trials if (v := _metric_of(t)) is not None and math.isfinite(v)]
    if shown and min(shown) > 0 and max(shown) > 100 * min(shown):
        ax.set_yscale("log")  # losses spread over decades: keep the good trials readable
    best_x, best_y, best = [], [], None
    for t in trials:
        ok = t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        if ok and (best is None or (t.value < best if minimize else t.value > best)):
            best = t.value
        if best is not None:
            best_x.append(t.number)
            best_y.append(best)
    if best_x:
        ax.step(best_x, best_y, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per trial ({tuner.settings.direction})")
    ax.legend(loc="best")
    if importances:
        names = list(importances)[::-1]
        bx.barh(names, [importances[n] for n in names], color="tab:green")
        bx.set_xlabel("importance (fANOVA, normalised)")
    else:
        bx.text(0.5, 0.5, "importances need >= 2 completed trials", ha="center", va="center")
        bx.set_axis_off()
    bx.set_title("parameter importances")
    fig.tight_layout()
    tmp = _tmp(path)
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return True


def _tmp(path: Path) -> Path:
    """A temp name of this process only: processes sharing a study write the same reports."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _atomic_write(path: Path, text: str) -> None:
    tmp = _tmp(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_reports(
    study: optuna.Study, tuner: Tuner, echo: Callable[[str], None] = print
) -> dict[str, Path]:
    """Write trials.csv, best.toml, tune.png and summary.json; print the table.

    Returns:
        The written files by kind (``trials``, ``best_config``, ``plot``, ``summary``).
    """
    out = tuner.study_dir
    out.mkdir(parents=True, exist_ok=True)
    metric = tuner.settings.metric
    keys = [p.key for p in tuner.params]
    rows = trial_rows(study, metric, keys)
    files: dict[str, Path] = {}

    files["trials"] = out / "trials.csv"
    tmp = _tmp(files["trials"])
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["trial", "state", metric, *keys, "run_dir",
                                                "error"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, files["trials"])

    from .study import best_trial

    best = best_trial(study)
    echo(format_table(rows, best.number if best else None))
    importances = param_importances(study)
    counts = {s.name.lower(): sum(r["state"] == s.name.lower() for r in rows) for s in TrialState}
    summary: dict[str, Any] = {
        "study": tuner.settings.study, "task": tuner.task_cls.name, "metric": metric,
        "direction": tuner.settings.direction, "trials": counts,
        "best": None, "importances": importances,
    }
    if best is not None:
        cfg = tuner.config_for(dict(best.params))
        header = (f"best trial {best.number} of study '{tuner.settings.study}' "
                  f"({metric} = {best.value:.6g})\n"
                  f"train it with: suite train {tuner.task_cls.name} --config "
                  f"{out / 'best.toml'}")
        files["best_config"] = out / "best.toml"
        _atomic_write(files["best_config"], to_toml(cfg, header=header))
        summary["best"] = {"trial": best.number, "value": best.value, "params": best.params,
                           "run_dir": best.user_attrs.get("run_dir", "")}
        shown = ", ".join(f"{k}={v}" for k, v in best.params.items())
        echo(f"best: trial {best.number} {metric}={best.value:.6g} ({shown})")
    if importances:
        echo("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
    files["summary"] = out / "summary.json"
    _atomic_write(files["summary"], json.dumps(summary, indent=2) + "\n")
    if _plot(study, tuner, importances, out / "tune.png"):
        files["plot"] = out / "tune.png"
    else:
        echo("no tune.png: the plot needs matplotlib (pip install matplotlib)")
    echo(f"wrote {', '.join(str(p) for p in files.values())}")
    return files
