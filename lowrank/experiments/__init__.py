"""The pipelines that chapters call, most returning a record (a frozen dataclass or a named tuple).

* :mod:`~lowrank.experiments.network_probe`: a network probed block by block (chapters 5, 9, 10);
* :mod:`~lowrank.experiments.label_noise`: ensembles against the best probe under label noise
  (chapter 6);
* :mod:`~lowrank.experiments.size_sweep`: generalization against memorization over data sizes
  and checkpoints (chapters 7 and 8);
* :mod:`~lowrank.experiments.stalled_dae`, :mod:`~lowrank.experiments.molrg_probe` and
  :mod:`~lowrank.experiments.trained_dae`: the paper's eq.-4 DAE and the probes of chapter 4;
  :mod:`~lowrank.experiments.unimodality_map`: chapter 11's map.

Imports every layer above it, never :mod:`lowrank.book`.
"""
