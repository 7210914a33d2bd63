"""Errors that stop a crawl before it starts, with one line for the user."""


class ConfigError(Exception):
    """Bad configuration: the message is one line naming the problem.

    ``scrapy crawl`` (``crawler/commands/crawl.py``) prints it as
    ``error: <message>`` and exits with status 2, without a traceback.
    """


class ProfileError(ConfigError):
    """A site profile cannot be found, parsed or validated."""


class RunLocked(Exception):  # noqa: N818 - "raise RunLocked(...)" reads as the situation
    """Another run of the same site into the same database holds the run lock.

    ``scrapy crawl`` prints ``error: <message>`` and exits with status 7.
    """
