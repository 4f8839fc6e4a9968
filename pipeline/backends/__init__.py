"""Where a run's units go beyond this process: ``ray_driver`` (the driver side, the only
ledger writer) and ``ray_worker`` (the actors, each running the engine); ``scheduling`` is the
pure placement policy.  Ray is an optional extra (``pip install -e ".[ray]"``): nothing here
is imported unless ``--ray`` is given.

May import: the engine and every room below it; never the command line.
"""
