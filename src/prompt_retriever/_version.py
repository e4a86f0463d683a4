"""The package version, at the bottom of the import layers so any module can read it."""

__version__ = "0.1.0"
