"""stationmon: telemetry monitor for the secondary loops of district-heating stations."""

__all__ = ["__version__"]

__version__ = "0.1.0"
