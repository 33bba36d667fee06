"""``python -m gearpy.server`` runs ``gearpy-server``."""

from gearpy.server.cli import main

main()
