"""The built-in translation plugin: Transformer machine translation on parallel corpora."""
