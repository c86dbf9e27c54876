"""The library a pip user imports: models, initialization, masks, pruning methods, data, training, signal propagation. Imports neither of the other wings (prunebench.pipeline, prunebench.report)."""
