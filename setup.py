"""Maps the repository's top-level folders onto the ``torchsuite`` import root.

``core/`` installs as ``torchsuite.core`` and ``plugins/`` as ``torchsuite.plugins``;
nothing is installed as a top-level ``core`` or ``plugins`` package.
"""

from setuptools import find_packages, setup

PACKAGE_DIR = {
    "torchsuite": "torchsuite",
    "torchsuite.core": "core",
    "torchsuite.plugins": "plugins",
}


def _packages() -> list[str]:
    packages = ["torchsuite"]
    for prefix, folder in PACKAGE_DIR.items():
        if prefix == "torchsuite":
            continue
        packages.append(prefix)
        packages += [f"{prefix}.{name}" for name in find_packages(folder)]
    return packages


setup(packages=_packages(), package_dir=PACKAGE_DIR)
