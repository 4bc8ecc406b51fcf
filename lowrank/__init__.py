"""lowrank: low-rank Gaussian mixture models of diffusion-model representations.

Companion package of the executable book on arXiv:2502.05743 (Li et al., "Understanding
Representation Dynamics of Diffusion Models via Low-Dimensional Modeling").

The package is layered; a layer imports only from the layers listed before it
(``tests/test_layers.py`` checks this from the imports):

* leaves, read by every layer: :mod:`lowrank.data` (data sets), :mod:`lowrank.provenance`
  (device, versions, platform) and ``lowrank._checks`` (argument checks);
* :mod:`lowrank.theory`: the MoLRG, its exact denoisers and closed forms, sampling, kernels;
* :mod:`lowrank.measure`: statistics, SNR, features, probes and level choice, copies, distances;
* :mod:`lowrank.nets`: the UNet, training, runs and their cache, the embedding classifier;
* :mod:`lowrank.experiments`: the pipelines that chapters call, each returning a record;
* :mod:`lowrank.book`: the results cell and glue, plotting, profiles, the paper's numbers.

One name is served from the top: ``lowrank.icr``, the label-free invariant contamination ratio
(:func:`lowrank.measure.icr.icr`), where users of the follow-up paper look for it.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "icr":
        # lazily, so that `import lowrank` stays free of torch and of every layer (provenance
        # imports the package for its version)
        from lowrank.measure.icr import icr

        return icr
    raise AttributeError(f"module 'lowrank' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "icr"])
