"""The model and what is exactly known about it (chapters 1-4).

* :mod:`~lowrank.theory.mixtures`: the MoLRG of Assumption 1 and a fitted low-rank mixture;
* :mod:`~lowrank.theory.denoisers`: the exact posterior-mean denoiser (Proposition 1), the
  empirical (memorizing) one, streamed, and the learnable eq.-4 DAE;
* :mod:`~lowrank.theory.closed_forms`: Theorem 1's SNR and the quantities behind it;
* :mod:`~lowrank.theory.schedules`: noise levels (DDPM, EDM, the probe grids);
* :mod:`~lowrank.theory.sampling`: Euler and Heun steps of the probability-flow ODE;
* :mod:`~lowrank.theory.clustering`, :mod:`~lowrank.theory.landscape`: subspace clustering and
  the loss landscape of chapter 4;
* :mod:`~lowrank.theory.kernels`: the fused projection denoiser (Triton) with its torch
  reference and dispatch.

Imports only the leaves (:mod:`lowrank.data`, :mod:`lowrank.provenance`, ``lowrank._checks``).
"""
