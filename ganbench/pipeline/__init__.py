"""The pipeline: run, evaluate, sweep, use a finished run; composes the layers below."""
