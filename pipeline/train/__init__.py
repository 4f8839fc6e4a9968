"""Training the models the pipeline runs."""
