"""DiscordPicExtract's shared code: the step scripts at the project's top level import from here."""

__version__ = "1.1.0"
