"""passk: exploration-aware reinforcement learning with verifiable rewards.

The numerics core is importable without any trainer machinery::

    >>> import torch, passk
    >>> rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    >>> passk.compute_advantages("passk_analytic", rewards, k=2)
    tensor([[ 1.0000, -0.3333, -0.3333, -0.3333]])
"""

__version__ = "0.1.0"
