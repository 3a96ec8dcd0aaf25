"""metanode: parametrized Runge-Kutta meta-solvers for robust neural ODEs."""

__version__ = "0.1.0"
