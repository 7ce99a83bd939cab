"""The code that shapes a run's weights, and nothing else: the augmentation policy (`augment`), the models
(`models`), the losses (`losses`), the training subset (`subset`) and the training loop with its optimiser
(`loop`). A run's id hashes every module of this folder (see `store.run_id`); code outside it (presets,
parameter parsing, provenance, the kNN monitor, the store, the CLI, every analysis module) can change
without renaming a stored run. The data enters a run's id through a fingerprint of the decoded arrays
(`data.fingerprint`), which covers the decoding code too.
"""
