"""The model work: pull and version the data, split it, train the autoencoder (and its cache),
evaluate and pick the threshold, the metrics, the promotion gate and its plots. Imports `core`,
`adapters` and `serving` (the scorer a model is evaluated with is the one that serves it)."""
