"""The estimators' layer: models, bounds, variants and their training objectives, the ELBO/IWAE estimators,
and the exact likelihoods (quadrature, enumeration). Pure tensors in, tensors out: no files, no configs but
the frozen ones they are handed, nothing of the layers above."""
