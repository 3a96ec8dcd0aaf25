"""Solver modules emitted by `tableau-gen generate`; do not edit by hand."""
