"""A minimal third-party torchsuite plugin (see README.md)."""
