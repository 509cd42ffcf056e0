"""The engine that runs a study: stages, skip/resume, the manifest, the lock, torchrun roles.
It knows no study: `experiments.organisms.study` and `experiments.pairs.study` declare theirs."""
