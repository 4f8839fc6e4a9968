"""Backends that drive the engine beyond one process: ``ray_driver`` (the driver side) and
``ray_worker`` (the actors).  Ray is an optional extra (``pip install -e ".[ray]"``): nothing
here is imported unless ``--ray`` is given."""
