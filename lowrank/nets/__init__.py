"""Trained networks (chapters 5-10).

* :mod:`~lowrank.nets.unet`: diffusers' ``UNet2DModel`` in the book's convention
  :math:`x_t = x_0 + \\sigma n` (DDPM and EDM parameterizations);
* :mod:`~lowrank.nets.train`: one resumable training loop (also for the eq.-4 DAE);
* :mod:`~lowrank.nets.runs`, :mod:`~lowrank.nets.cache`: runs named by their configuration,
  trained once into a safetensors + JSON cache and checked when loaded;
* :mod:`~lowrank.nets.classifier`: the small embedding classifier of chapters 7 and 8.

Imports the leaves, :mod:`lowrank.theory` and :mod:`lowrank.measure`.
"""
