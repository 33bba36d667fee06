"""The command-line kit the three programs share: options (:mod:`.options`) and exit mapping (:mod:`.errors`).

gearpy-server, gearpy-worker and gearpy-client take their common options (servers, config file,
TLS, logging, ``--version``, ``--print-config``) from one place, so they are spelled, typed,
checked and documented the same way, and every error leaves through :func:`.errors.run_main`,
which turns it into one line on stderr and a code from :mod:`gearpy.exitcodes`.
"""
