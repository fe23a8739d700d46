"""Background training jobs: the runner (a detached supervisor), starting a training, progress curves."""
