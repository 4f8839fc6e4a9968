#!/usr/bin/env python3
"""Entry point: ``python run_pipeline.py JOB.yaml`` (see ``--help``)."""
from pipeline.cli import main

if __name__ == "__main__":
    main()
