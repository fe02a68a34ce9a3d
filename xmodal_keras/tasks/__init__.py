"""Tasks: one folder per task (captioning, retrieval, fusion), each with its settings,
training, evaluation, prediction and export of a run directory."""
