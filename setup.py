"""The one build setting pyproject.toml cannot say: ship the registry index inside the wheel.

`registry/index.json` stays the only copy anyone edits. The wheel gets it as the data package
`faceres._registry`, which is the checkout's `registry/` folder mapped into the package, with
`index.json` as its only file: the model folders (weights, tens of MB) stay out and an installed
faceres pulls them from the Hub at the pinned revisions. `faceres.settings` uses this index only
when faceres runs from an installed wheel (see `settings.REGISTRY_DIR`).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["faceres", "faceres.*"]), "faceres._registry"],
    package_dir={"faceres._registry": "registry"},
    package_data={"faceres._registry": ["index.json"]},
    exclude_package_data={"faceres._registry": ["models/*", "*.lock", "*.tmp"]},
)
