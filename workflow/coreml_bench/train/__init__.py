"""Training: the recipe (``recipe``, no torch), the resumable loop (``loop``) and the baseline
stage (``baseline``)."""
