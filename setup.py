"""Packaging of the Scrapy project for scrapyd (``scrapyd-deploy`` builds its egg with this file).

The egg holds the project's packages and the shipped site profiles
(``crawler/sites/*.toml``, read through ``importlib.resources``, so they load
from inside the zipped egg); its ``scrapy`` entry point names the settings
module.  The demo shop, tests and benchmarks stay out.
"""

from setuptools import find_packages, setup

PACKAGES = ("crawler", "pipelines", "extensions", "storage")

setup(
    name="catalog-crawler",
    version="0.1",
    packages=find_packages(include=[name for package in PACKAGES for name in (package, f"{package}.*")]),
    package_data={"crawler": ["sites/*.toml"]},
    entry_points={"scrapy": ["settings = crawler.settings"]},
    zip_safe=True,
)
