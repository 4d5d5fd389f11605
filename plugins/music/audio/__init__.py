"""Audio half of the music plugin: spectrogram sound-source model, synthesis, voice transfer.

Waveform path: a **differentiable harmonic-plus-noise synthesizer** (DDSP, :mod:`.synth`),
not Griffin-Lim. Why:

* The pitch is given (notes, or f0 taken from a recording), so an oscillator bank locked to
  it renders exactly that pitch; the network only learns the timbre (how loudness spreads
  over the harmonics, plus a filtered-noise breath), which is learnable from a few minutes
  of a voice on a CPU.
* The synthesizer is differentiable, so the model trains end to end on a multi-resolution
  STFT loss against the real audio; there is no separate vocoder to train.
* Griffin-Lim has to invent the phase. Even from the *true* log-mel it loses a lot: the
  quality report's ``griffinlim_mel.*`` row (true log-mel -> InverseMelScale ->
  Griffin-Lim) is the ceiling of a "predict log-mel, then Griffin-Lim" model, and the
  DDSP model's distances are compared against it. Griffin-Lim from the true *linear*
  magnitude remains the upper reference (``griffinlim.*``).
* Synthesis is a few tensor ops per frame: far faster than real time on 2 cores.

Modules: :mod:`.audio_io` (soundfile I/O), :mod:`.features` / :mod:`.pitch` (log-mel,
loudness, YIN f0), :mod:`.notes` / :mod:`.render` (MIDI lines, FluidSynth rendering),
:mod:`.data` (prepare + datasets), :mod:`.model` (conv -> LSTM -> FC -> synth controls),
:mod:`.task` (the ``music-audio`` task), :mod:`.quality` (report), :mod:`.inference` /
:mod:`.commands` (``suite music synthesize`` / ``suite music transfer``).
"""
