"""inpca: trajectories of deep networks in prediction space, Bhattacharyya distances and InPCA.

This module is imported when Snakemake parses the workflow, so it must stay light: no torch,
h5py or numpy imports here. Submodules import what they need.
"""

__version__ = "0.1.0"
