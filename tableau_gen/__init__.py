"""Symbolic derivation of explicit Runge-Kutta families with SymPy."""
