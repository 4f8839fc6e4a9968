#!/usr/bin/env python3
"""Entry point: ``python run_pipeline.py JOB.yaml`` (see ``--help``)."""
import gc

gc.disable()  # until start-up's imports are done: see pipeline.cli.entry
from pipeline.cli import entry  # noqa: E402

if __name__ == "__main__":
    entry()
