"""The command line's commands, one module each (run, validate, stylize, sheet, stylize-still, train ...); wired in pipeline/cli.py.  The only modules that print or exit."""
