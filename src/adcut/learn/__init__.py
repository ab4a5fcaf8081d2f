"""Learning a model from labelled episodes: dataset, training, distillation, calibration, alignment."""
