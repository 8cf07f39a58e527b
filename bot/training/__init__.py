"""Training: the Train… form, starting jobs once (with approvals), following them at the provider, cancelling
them, and their views."""
