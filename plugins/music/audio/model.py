"""The sound-source model: conv front end -> LSTM -> fully connected -> synthesizer controls.

Input per frame: note/pitch conditioning (:func:`~.features.build_conditioning`) and a
learned voice embedding. Output per frame: DDSP controls (overall harmonic amplitude,
harmonic distribution, noise filter), rendered to audio by :mod:`.synth`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchsuite.core.errors import SuiteError

from .features import COND_DIM
from .synth import exp_sigmoid, filtered_noise, harmonic_synth

__all__ = ["ModelSpec", "SoundSourceModel", "VoiceTable", "hold_f0", "sound_gate"]

_NAME_BYTES = 32
#: Time constant (s) of the output gate's decay after the last sounding frame.
RELEASE_S = 0.1


@dataclass(frozen=True)
class ModelSpec:
    """Model sizes (from the task's ``[model]`` config section)."""

    conv_channels: int = 64
    conv_layers: int = 2
    kernel_size: int = 5
    lstm_hidden: int = 128
    fc_hidden: int = 128
    voice_dim: int = 32
    voice_slots: int = 32
    harmonics: int = 32
    noise_bands: int = 32
    sample_rate: int = 16000
    hop: int = 128


class VoiceTable(nn.Module):
    """Voice embeddings plus their names, both saved in the state dict.

    The table has a fixed number of slots, so a checkpoint always loads into a
    fresh model of the same config; fine-tuning on a new speaker/instrument takes
    a free slot (:meth:`ids` with ``add=True``) instead of resizing the table.
    Names live in a uint8 buffer so ``torch.load(weights_only=True)`` restores them.
    """

    def __init__(self, slots: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(slots, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.register_buffer("names", torch.zeros(slots, _NAME_BYTES, dtype=torch.uint8))

    def voices(self) -> list[str]:
        """Names of the voices in use, in slot order."""
        out = []
        for row in self.names.tolist():
            name = bytes(b for b in row if b).decode("utf-8", "replace")
            if name:
                out.append(name)
        return out

    def add(self, name: str) -> int:
        """Give ``name`` a free slot (returns its id)."""
        used = self.voices()
        if name in used:
            return used.index(name)
        raw = name.encode("utf-8")[:_NAME_BYTES]
        if not raw:
            raise SuiteError("a voice name must not be empty.")
        slot = len(used)
        if slot >= self.names.shape[0]:
            raise SuiteError(
                f"the voice table is full ({self.names.shape[0]} voices: {', '.join(used)}); "
                f"cannot add '{name}'. Train with a larger model.voice_slots."
            )
        self.names[slot].zero_()
        self.names[slot, : len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
        return slot

    def ids(self, names: list[str], *, add: bool = False) -> torch.Tensor:
        """Ids of ``names`` ([B] long); unknown names are added when ``add`` else refused."""
        known = self.voices()
        out = []
        for n in names:
            if n in known:
                out.append(known.index(n))
            elif add:
                out.append(self.add(n))
                known = self.voices()
            else:
                raise SuiteError(
                    f"unknown voice '{n}'; this model knows: {', '.join(known) or '(none)'}. "
                    "Pick one of those with --voice, or add a voice with "
                    "`suite finetune music-audio --from RUN data.dir=YOUR_PREPARED_RECORDINGS`."
                )
        return torch.tensor(out, dtype=torch.long, device=self.embedding.weight.device)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)


def hold_f0(f0: torch.Tensor) -> torch.Tensor:
    """Forward-fill zeros (unvoiced frames) with the last voiced f0: [B, T] -> [B, T]."""
    t = f0.shape[-1]
    idx = torch.arange(t, device=f0.device).expand_as(f0) * (f0 > 0)
    idx = torch.cummax(idx, dim=-1).values
    return torch.gather(f0, -1, idx)


def sound_gate(cond: torch.Tensor, release_frames: float) -> torch.Tensor:
    """Where the output may sound: 1 on voiced (or, with loudness given, audible) frames,
    decaying as ``exp(-frames since / release_frames)`` after them: [B, T, C] -> [B, T].

    The model never sees long silences in training (segments are cut where notes play),
    and an LSTM left running through seconds of "no note" drifts into a steady tone; the
    gate keeps rests and endings silent while leaving a release tail for the network.
    """
    b, t, _ = cond.shape
    audible = (cond[..., 4] > 0) & (cond[..., 3] > 0.25)  # loudness given and > -60 dB
    on = (cond[..., 1] > 0) | audible  # [B, T]
    steps = torch.arange(t, device=cond.device).expand(b, t)
    last_on = torch.cummax(torch.where(on, steps, torch.full_like(steps, -(10**9))), -1).values
    since = (steps - last_on).clamp_max(10**6).to(cond.dtype)
    return torch.exp(-since / release_frames)


class SoundSourceModel(nn.Module):
    """Conditioning frames + voice -> harmonic-plus-noise audio.

    Args:
        spec: Sizes.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.voice = VoiceTable(spec.voice_slots, spec.voice_dim)
        layers: list[nn.Module] = []
        ch_in = COND_DIM + spec.voice_dim
        for _ in range(spec.conv_layers):
            layers += [
                nn.Conv1d(ch_in, spec.conv_channels, spec.kernel_size,
                          padding=spec.kernel_size // 2),
                nn.GELU(),
            ]
            ch_in = spec.conv_channels
        self.front = nn.Sequential(*layers)
        self.lstm = nn.LSTM(spec.conv_channels, spec.lstm_hidden, batch_first=True)
        noise = torch.rand(1 << 15, generator=torch.Generator().manual_seed(0)) * 2 - 1
        self.register_buffer("noise_table", noise, persistent=False)  # 2 s at 16 kHz
        self.head = nn.Sequential(
            nn.Linear(spec.lstm_hidden + COND_DIM + spec.voice_dim, spec.fc_hidden),
            nn.LayerNorm(spec.fc_hidden),
            nn.GELU(),
            nn.Linear(spec.fc_hidden, spec.fc_hidden),
            nn.GELU(),
            nn.Linear(spec.fc_hidden, 1 + spec.harmonics + spec.noise_bands),
        )

    def controls(self, cond: torch.Tensor, voice_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Frame controls.

        Args:
            cond: [B, T, COND_DIM] conditioning.
            voice_ids: [B] voice slots.

        Returns:
            ``amplitude`` [B, T], ``harmonic_dist`` [B, T, K], ``noise`` [B, T, M].
        """
        b, t, _ = cond.shape
        v = self.voice(voice_ids)[:, None, :].expand(b, t, -1)  # [B, T, E]
        x = torch.cat([cond, v], dim=-1)  # [B, T, C + E]
        h = self.front(x.transpose(1, 2)).transpose(1, 2)  # [B, T, conv]
        h, _ = self.lstm(h)  # [B, T, hidden]
        out = self.head(torch.cat([h, x], dim=-1))  # [B, T, 1 + K + M]
        k = self.spec.harmonics
        amplitude = exp_sigmoid(out[..., 0])
        harmonic_dist = exp_sigmoid(out[..., 1 : 1 + k])
        noise = exp_sigmoid(out[..., 1 + k :] - 5.0)  # starts quiet: tone before breath
        return {"amplitude": amplitude, "harmonic_dist": harmonic_dist, "noise": noise}

    def forward(self, cond: torch.Tensor, f0: torch.Tensor, voice_ids: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Audio [B, T * hop] for conditioning [B, T, C], f0 [B, T] (Hz) and voices [B]."""
        c = self.controls(cond, voice_ids)
        # The pitch is held through unvoiced frames so a note's release keeps its pitch
        # while the network fades the amplitude out (within the gate's release).
        f0 = hold_f0(f0 * cond[..., 1])
        gate = sound_gate(cond, RELEASE_S * self.spec.sample_rate / self.spec.hop)  # [B, T]
        harmonic = harmonic_synth(f0, c["amplitude"] * gate, c["harmonic_dist"],
                                  self.spec.sample_rate, self.spec.hop)
        # Eval without a seed uses a fixed noise table, so inference is deterministic and
        # torch.export / serving reproduce the eager output; training draws fresh noise.
        table = self.noise_table if generator is None and not self.training else None
        noise = filtered_noise(c["noise"] * gate[..., None], self.spec.hop, generator, table)
        return harmonic + noise
