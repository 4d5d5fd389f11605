"""The built-in music plugin: MIDI generation on the bundled Bach chorales."""
