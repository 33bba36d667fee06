"""``python -m gearpy.client`` runs the ``gearpy-client`` command."""

from gearpy.client.cli import main

if __name__ == "__main__":
    main()
