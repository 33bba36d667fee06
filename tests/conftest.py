"""Shared test helpers. The live-server fixtures come from the ``gearpy.testing`` plugin."""
