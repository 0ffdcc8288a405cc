"""Training-side tooling for agents (model merging and, later, fine-tuning jobs)."""
