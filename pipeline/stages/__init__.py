"""Stages, one file each, in one registry (``registry.py``; a duplicate name is refused): each
holds its frozen ``Params`` and calls kernels (``ops``) or models (``models``).  A stage's
module is imported when a job first names it (``get_stage``), so a job that runs no model
never imports torch.  ``chain.py`` runs a chain of them on a batch; ``variants`` is the stage
that fans an image out to several chains.

May import: ``models``, ``machine``, ``ops``, ``media`` and the bottom modules; never a
source, the job, the record or the engine.
"""
from .registry import get_stage, register, stage_names  # noqa: F401
