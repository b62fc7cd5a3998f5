"""Package discovery, which pyproject.toml cannot express alone: every package under mdsnn_zoo/ is
found, and the top-level folder kernels/ is installed as ``mdsnn_zoo.kernels``. Everything else is
in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["mdsnn_zoo", "mdsnn_zoo.*"]) + ["mdsnn_zoo.kernels"],
    package_dir={"mdsnn_zoo.kernels": "kernels"},
)
