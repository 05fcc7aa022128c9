"""Maps the repository's top-level folders into one import package, `pathstream` (metadata: pyproject.toml).

`services/escnn/` installs as `pathstream.services.escnn`, `shared/events/` as `pathstream.shared.events`
and so on, so nothing named `services` or `shared` lands at the top of site-packages.
"""

from setuptools import find_packages, setup

FOLDERS = ("services", "shared", "synthetic", "training", "backbones")

packages = [f"pathstream.{found}" for found in find_packages(include=[f"{folder}*" for folder in FOLDERS])]
setup(
    packages=packages,
    package_dir={f"pathstream.{folder}": folder for folder in FOLDERS},
)
