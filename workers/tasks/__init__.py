"""Fine-tuning tasks: each loads its pretrained model and data once per worker and hands the training
loop fresh model copies, batches, a loss and an evaluation."""
