"""Measurements of features and of samples, for any denoiser (chapters 2-11).

* :mod:`~lowrank.measure.stats`: paired differences, intervals, t quantiles and the
  unimodality test with its power;
* :mod:`~lowrank.measure.snr`: the SNR of Definition 1, exact, estimated and on real data;
* :mod:`~lowrank.measure.features`: features by forward hooks, across noise levels;
* :mod:`~lowrank.measure.probes`: linear and projection probes across noise levels;
* :mod:`~lowrank.measure.ensembles`: the soft vote of probes at neighbouring levels;
* :mod:`~lowrank.measure.levels`: the layer and level to report, chosen on training data;
* :mod:`~lowrank.measure.copies`, :mod:`~lowrank.measure.distances`,
  :mod:`~lowrank.measure.correlation`: copies, angles and distances, rank correlation;
* :mod:`~lowrank.measure.inference`: power, detectable effects, family corrections,
  permutation tests;
* :mod:`~lowrank.measure.bayes`: the Bayes accuracy across noise levels (the ceiling);
* :mod:`~lowrank.measure.icr`: the label-free invariant contamination ratio (``lowrank.icr``).

Imports the leaves and :mod:`lowrank.theory`.
"""
