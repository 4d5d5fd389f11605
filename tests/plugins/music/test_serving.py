"""``suite serve music``: JSON requests -> generated pieces over real HTTP, bad fields -> 422."""

from __future__ import annotations

import base64
import io
from typing import Any

import pretty_midi
import pytest
import torch
from suite_testing import post_json
from torchsuite.core.lifecycle.serve import ServeAdapter, ServeOptions, build_app, serve_in_thread
from torchsuite.plugins.music.events import write_midi
from torchsuite.plugins.music.task import MusicConfig, MusicTask

pytest.importorskip("fastapi")


@pytest.fixture
def server() -> Any:
    cfg = MusicConfig()
    cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads, cfg.model.d_ff = 32, 1, 2, 64
    task = MusicTask(cfg)
    torch.manual_seed(0)
    app = build_app(ServeAdapter(task, task.build_model()), ServeOptions(max_wait_ms=1.0))
    with serve_in_thread(app) as url:
        yield f"{url}/v1/tasks/music/predict"


def test_a_request_returns_a_playable_piece_and_same_seed_same_piece(server: str) -> None:
    status, body = post_json(server, {"style": "irish", "bars": 2, "seed": 3})
    assert status == 200, body
    assert body["style"] == "irish" and 1 <= body["bars"] <= 2
    midi = pretty_midi.PrettyMIDI(io.BytesIO(base64.b64decode(body["midi_base64"])))
    notes = sorted((round(n.pitch), n.start) for i in midi.instruments for n in i.notes)
    assert len(notes) == len(body["notes"])
    assert sorted(p for p, _ in notes) == sorted(n[2] for n in body["notes"])
    assert post_json(server, {"style": "irish", "bars": 2, "seed": 3})[1]["notes"] == body["notes"]


def test_a_midi_prompt_is_continued(server: str, piece: Any, tmp_path: Any) -> None:
    path = write_midi(piece, tmp_path / "prompt.mid")
    prompt = base64.b64encode(path.read_bytes()).decode()
    status, body = post_json(server, {"style": "bach", "bars": 8, "prompt_midi": prompt})
    assert status == 200, body
    first = {(n.start, n.pitch) for n in piece.notes}
    got = {(n[0], n[2]) for n in body["notes"]}
    assert first <= got  # the prompt's notes come back unchanged


@pytest.mark.parametrize(("payload", "reason"), [
    ({"style": "jazz"}, "field 'style' must be one of"),
    ({"bars": 1000}, "field 'bars' must be in 1..64"),
    ({"seed": 1.5}, "field 'seed' must be an integer"),
    ({"temperatur": 1.0}, "unknown field(s) temperatur"),
    ({"prompt_midi": "bm90IG1pZGk="}, "field 'prompt_midi' is not a base64-encoded MIDI file"),
    ([1, 2], "expected a JSON object"),
])
def test_bad_fields_get_a_reason(server: str, payload: Any, reason: str) -> None:
    status, body = post_json(server, payload)
    assert status == 422 and reason in body["error"], body
