"""hps workers: claim trials over HTTP, fine-tune with the sampled optimizer, report, complete."""
