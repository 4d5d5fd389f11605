"""torchsuite: one PyTorch core hosting task plugins (music, translation, driving).

The public API lives in :mod:`torchsuite.core`; the built-in plugins live in
:mod:`torchsuite.plugins`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("torchsuite")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
