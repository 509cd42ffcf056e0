"""The literature's four findings on a real model (a pair run's `findings` stage): the
thought-switch penalty, activation-steered compression, DPO against SFT on a new format,
and instructions. `config` holds the section; one module per finding measures it."""
