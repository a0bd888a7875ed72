"""The estimators' layer: models, bounds, variants and their training objectives, the ELBO/IWAE estimators,
and the exact likelihoods (quadrature, enumeration). Pure tensors in, tensors out: no files, no configs but
the frozen ones they are handed, nothing of the layers above."""

# Burda et al. 2016, section 5.2: unit u is active if Cov_x(E_q[z_u]) > 0.01. Here, not in estimators.py, so
# that the report, which labels its figure with it, does not depend on the estimators' code.
ACTIVE_THRESHOLD = 0.01
