"""The networks, as plain ``nn.Module``s whose state-dict keys match the checkpoints users
already have (pytorch/examples, junyanz, PyTorch-GAN, naoto0804's AdaIN), and reading those
files safely (``checkpoints.py``: safetensors or ``torch.load(weights_only=True)``, never
code).  ``families.py`` is the one table of checkpoint families: how each is recognised from
its keys, built, described and run.

May import: ``machine``, ``ops``, ``media`` and the bottom modules; never a stage or source.
"""
