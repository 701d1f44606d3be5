"""The catalog: which tasks, models and datasets exist, their defaults, the optimizers and params their
workers accept, and the learning rates each model family suits. Shared knowledge: the service validates
studies with it, workers resolve names with it; it imports neither side."""
