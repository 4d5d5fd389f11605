"""The quality report of ``music-audio`` on held-out audio.

For each measured segment the model renders the notes (no loudness given) and the
report compares, against the real rendering:

* ``model.*`` — the model's audio;
* ``griffinlim.*`` — Griffin-Lim phase recovery from the *real* linear magnitude
  spectrogram: the upper reference (it knows the true spectrogram, which the model
  must predict; only the phase is lost);
* ``griffinlim_mel.*`` — Griffin-Lim from the real *log-mel* (inverted with
  ``InverseMelScale``): the best a log-mel-predicting model with a Griffin-Lim
  vocoder could reach, i.e. the ceiling of the waveform path this task did not take;
* ``sine.*`` — a sine wave on the notes' pitches: the floor (right pitch, no timbre).

``*.mrstft`` is the multi-resolution STFT distance (the training loss) and
``*.logmel_l1`` the mean absolute log-mel difference. ``f0.*`` compares the pitch
found (YIN, :mod:`.pitch`) in the model's audio with the notes: median cents error
(median over frames, then over segments) and gross pitch error rate (> 50 cents) on
frames both call voiced, and voicing accuracy
(``f0.real_*``: the same for the real audio, the best reachable). ``voice_clf.*`` is
the accuracy of a small voice classifier (log-mel statistics -> MLP, trained on real
train-split audio): on real held-out audio (reference) and on *transferred* audio —
each segment's f0 and loudness re-rendered in another voice, counted correct when
classified as that voice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torchaudio
from torch import nn
from torchsuite.core.data.preprocess import FeatureStats, Normalize

from .data import SegmentDataset, collate_segments
from .features import (
    FeatureSpec,
    build_conditioning,
    cents_between,
    f0_and_voicing,
    log_mel,
    loudness_db,
    onsets_from_f0,
)
from .losses import MultiResolutionSTFTLoss, logmel_l1
from .model import SoundSourceModel
from .notes import sine_render

if TYPE_CHECKING:
    from .task import MusicAudioTask

__all__ = ["VoiceClassifier", "audio_conditioning", "f0_agreement", "quality_report"]


def audio_conditioning(wave: torch.Tensor, spec: FeatureSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditioning taken from a recording (f0 + loudness): [N] -> (cond [T, C], f0 [T])."""
    n = wave.shape[-1] // spec.hop * spec.hop
    wave = wave[:n]
    loud = loudness_db(wave, spec)
    f0, voiced_b = f0_and_voicing(wave, spec, loud)
    voiced = voiced_b.float()
    return build_conditioning(f0, voiced, onsets_from_f0(f0, voiced), loud), f0


def f0_agreement(wave: torch.Tensor, ref_f0: torch.Tensor, ref_voiced: torch.Tensor,
                 spec: FeatureSpec) -> dict[str, float]:
    """Pitch of ``wave`` (YIN) against a reference track.

    Returns ``cents`` (median absolute error on frames voiced in both), ``gpe`` (gross
    pitch error: share of those frames off by more than 50 cents, i.e. wrong note or
    octave) and ``voicing_acc`` (frames whose voiced/unvoiced call matches), NaN when
    no frame is voiced in both.
    """
    f0, voiced = f0_and_voicing(wave, spec)
    t = min(f0.shape[0], ref_f0.shape[0])
    ref_v = ref_voiced[:t].bool()
    both = voiced[:t] & ref_v
    cents = cents_between(f0[:t][both], ref_f0[:t][both])
    nan = float("nan")
    return {
        "cents": float(cents.median()) if cents.numel() else nan,
        "gpe": float((cents > 50).float().mean()) if cents.numel() else nan,
        "voicing_acc": float((voiced[:t] == ref_v).float().mean()),
    }


class VoiceClassifier(nn.Module):
    """Mean and std of log-mel bands over time -> normalize -> 2-layer MLP -> voice.

    Args:
        voices: Voice names, the class order.
        n_mels: Mel bands of the features.
        stats: Statistics of the training features (``FeatureStats`` over
            :meth:`features` rows); the classifier normalizes its input with them, so
            train and evaluation see the same fixed transform.
    """

    def __init__(self, voices: list[str], n_mels: int, stats: FeatureStats | None = None) -> None:
        super().__init__()
        self.voices = voices
        self.norm: nn.Module = Normalize.from_stats(stats) if stats is not None else nn.Identity()
        self.net = nn.Sequential(nn.Linear(2 * n_mels, 64), nn.ReLU(), nn.Linear(64, len(voices)))

    @staticmethod
    def features(wave: torch.Tensor, spec: FeatureSpec) -> torch.Tensor:
        """[B, N] -> [B, 2 * n_mels]."""
        mel = log_mel(wave, spec)  # [B, n_mels, T]
        return torch.cat([mel.mean(-1), mel.std(-1)], dim=-1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(feats))

    def predict(self, wave: torch.Tensor, spec: FeatureSpec) -> list[str]:
        """Voice names for audio [B, N]."""
        self.eval()
        with torch.no_grad():
            idx = self(self.features(wave, spec)).argmax(-1)
        return [self.voices[i] for i in idx.tolist()]


def train_voice_classifier(task: MusicAudioTask) -> VoiceClassifier | None:
    """Fit the classifier on real train audio; ``None`` with fewer than two voices."""
    sets = task.datasets()
    if "train" not in sets:
        return None
    ds: SegmentDataset = sets["train"]
    spec = task.feature_spec
    n = min(len(ds), task.cfg.eval.classifier_segments)
    idx = torch.linspace(0, len(ds) - 1, n).round().long().unique().tolist()
    batch = collate_segments([ds[i] for i in idx])
    voices = sorted(set(batch["voice"]))
    if len(voices) < 2:
        return None
    gen = torch.Generator().manual_seed(0)
    # The caller may be under no_grad (evaluation); fitting the classifier needs gradients.
    # Its own seeded init keeps the global RNG (and so the trainer's resume) untouched.
    with torch.enable_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        feats = VoiceClassifier.features(batch["audio"], spec)
        clf = VoiceClassifier(voices, spec.n_mels, FeatureStats().update(feats))
        labels = torch.tensor([voices.index(v) for v in batch["voice"]])
        opt = torch.optim.Adam(clf.parameters(), lr=3e-3)
        clf.train()
        for _ in range(task.cfg.eval.classifier_steps):
            pick = torch.randint(0, len(labels), (min(64, len(labels)),), generator=gen)
            loss = nn.functional.cross_entropy(clf(feats[pick]), labels[pick])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return clf


def _power_stft(x: torch.Tensor, spec: FeatureSpec) -> torch.Tensor:
    """Power spectrogram [n_fft // 2 + 1, N // hop + 1] in GriffinLim's layout."""
    window = torch.hann_window(spec.n_fft)
    return torch.stft(x, spec.n_fft, spec.hop, window=window, return_complex=True).abs() ** 2


def _fit(y: torch.Tensor, n: int) -> torch.Tensor:
    """Cut or zero-pad ``y`` ([N']) to ``n`` samples."""
    y = y[:n]
    return torch.nn.functional.pad(y, (0, n - y.shape[-1]))


def _pick(n: int, k: int) -> list[int]:
    return torch.linspace(0, n - 1, min(n, k)).round().long().unique().tolist()


@torch.no_grad()
def quality_report(task: MusicAudioTask, model: SoundSourceModel, split: str) -> dict[str, float]:
    """The metrics described in the module docstring, averaged over up to
    ``eval.max_segments`` segments of ``split``."""
    from torchsuite.core.errors import DataError

    sets = task.datasets()
    if split not in sets:
        raise DataError(f"task 'music-audio' has no '{split}' split in '{task.data_dir}' "
                        f"(it has: {', '.join(sets)}). Choose another split.")
    ds: SegmentDataset = sets[split]
    spec = task.feature_spec
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    mrstft = MultiResolutionSTFTLoss(task.cfg.loss.fft_sizes)
    gl = torchaudio.transforms.GriffinLim(n_fft=spec.n_fft, hop_length=spec.hop, power=2.0,
                                          n_iter=task.cfg.eval.griffin_lim_iters)
    inv_mel = torchaudio.transforms.InverseMelScale(n_stft=spec.n_fft // 2 + 1,
                                                    n_mels=spec.n_mels,
                                                    sample_rate=spec.sample_rate)
    if task._classifier is None:
        task._classifier = train_voice_classifier(task) or False
    clf: VoiceClassifier | bool = task._classifier
    known = model.voice.voices()
    values: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        if value == value:  # skip NaN (e.g. no voiced frame to compare)
            values.setdefault(key, []).append(value)

    gen = torch.Generator().manual_seed(0)
    if not known:
        raise DataError("the model has no voices (it was never trained); train it first.")
    for i in _pick(len(ds), task.cfg.eval.max_segments):
        item = ds[i]
        # A voice new to the model (the target voice before fine-tuning) is rendered with
        # the first known voice: the baseline that fine-tuning on the new voice must beat.
        unknown = item["voice"] not in known
        add("model.unknown_voice_frac", float(unknown))
        x = item["audio"]
        batch = collate_segments([item])
        voice_id = model.voice.ids([known[0] if unknown else item["voice"]]).to(device)
        cond = build_conditioning(batch["f0"], batch["voiced"], batch["onset"], batch["loud"])
        if item["notes"]:
            cond[..., 3:5] = 0.0  # render from the notes alone
        y = model(cond.to(device), batch["f0"].to(device), voice_id, generator=gen)[0].cpu()
        real_mel = log_mel(x, spec)
        y_gl = _fit(gl(_power_stft(x, spec)), x.shape[-1])
        mel_power = torch.exp(real_mel) - 1e-5
        pad = torch.zeros(spec.n_mels, 1)  # GL's frame count: N // hop + 1
        y_glmel = _fit(gl(inv_mel(torch.cat([mel_power.clamp_min(0), pad], -1))), x.shape[-1])
        y_sine = sine_render(item["f0"], item["voiced"], spec)
        for name, wave in (("model", y), ("griffinlim", y_gl), ("griffinlim_mel", y_glmel),
                           ("sine", y_sine)):
            add(f"{name}.mrstft", float(mrstft(wave[None], x[None])))
            add(f"{name}.logmel_l1", float(logmel_l1(log_mel(wave, spec), real_mel)))
        # On the real audio the f0 metrics measure the detector + rendering: the best reachable.
        for name, wave in (("model", y), ("real", x)):
            for key, value in f0_agreement(wave, item["f0"], item["voiced"], spec).items():
                add(f"f0.{name}_{key}", value)
        if isinstance(clf, VoiceClassifier):
            if item["voice"] in clf.voices:
                add("voice_clf.real_acc", float(clf.predict(x[None], spec)[0] == item["voice"]))
            others = [v for v in clf.voices if v != item["voice"] and v in known]
            if others:
                target = others[i % len(others)]
                a_cond, a_f0 = audio_conditioning(x, spec)
                z = model(a_cond[None].to(device), a_f0[None].to(device),
                          model.voice.ids([target]).to(device), generator=gen)[0].cpu()
                add("voice_clf.transfer_acc", float(clf.predict(z[None], spec)[0] == target))
    model.train(was_training)
    # Cents errors: the median over segments, since one octave slip of the detector on one
    # segment (1200 cents) would swamp a mean; gpe counts such slips.
    return {k: float(torch.tensor(v).median()) if k.endswith("_cents") else sum(v) / len(v)
            for k, v in sorted(values.items())}


