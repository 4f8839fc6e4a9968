"""Training the models the pipeline runs: ``style`` (Johnson et al.'s fast style nets),
``arbitrary`` (AdaIN decoders), ``cyclegan`` (Zhu et al.), ``gan`` (generators from noise),
all resumable from checkpoints through one step loop (``step_loop.py``).

May import: ``models``, ``machine``, ``ops``, ``media`` and the bottom modules; it sits beside
the backends, above the engine, and nothing but the commands imports it.
"""
