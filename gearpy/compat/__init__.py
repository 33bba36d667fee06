"""Drop-in replacements for other Gearman libraries' APIs, built on gearpy's protocol module.

* :mod:`gearpy.compat.gearman` - python-gearman 2.x (Yelp; ``gearman3``, Archivematica's fork):
  change ``import gearman`` to ``from gearpy.compat import gearman``.
"""
