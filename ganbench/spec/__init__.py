"""Specification: protocol and model-card parsing, validation, identity, seeds and z."""
