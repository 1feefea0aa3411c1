"""The ``--dtype`` and ``--device`` choices, apart from :mod:`passk.rollout.models` so
that a command line can offer them without importing torch."""

DTYPE_CHOICES = ("auto", "fp32", "bf16", "fp16")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
