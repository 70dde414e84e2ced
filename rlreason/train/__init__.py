"""Training: the LightningModule, DataModule and callbacks that run any (reward, algorithm) pair."""
