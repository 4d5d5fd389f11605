"""Audio half of the music plugin: spectrogram sound-source model, synthesis, voice transfer."""
