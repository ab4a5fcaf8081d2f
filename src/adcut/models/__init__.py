"""Models: the architectures (torch), the numpy LSTM, self-describing checkpoints, and running a model over windows.

Every model takes feature windows ``(batch, frames, n_features)`` of raw (unnormalised) features
and returns class logits ``(batch, n_classes)``. Input normalisation lives inside the model as
buffers, so a checkpoint alone is enough to run it. This package's face imports nothing: reading a
checkpoint or running the numpy LSTM must not import torch.
"""
