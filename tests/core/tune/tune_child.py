"""Run one tuning process for the multi-process tests: ``python tune_child.py SPEC.json``.

A fresh interpreter rather than ``fork``: a forked child of a pytest process that has
already run autograd cannot run backward ("autograd's threading ... fork").
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import torch


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(1)
    sys.path.insert(0, spec["template_site"])
    from torchsuite.core.tune import TuneConfig, Tuner

    task_cls = importlib.import_module("suite_template.task").TemplateRegression
    cfg = TuneConfig(trials=spec["trials"], **spec["settings"])
    Tuner(task_cls, cfg, overrides=spec["overrides"], study_dir=Path(spec["study_dir"]),
          echo=lambda _: None).run()


if __name__ == "__main__":
    main(sys.argv[1])
