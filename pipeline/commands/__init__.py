"""CLI commands beyond run/validate, one module each; wired in pipeline/cli.py."""
