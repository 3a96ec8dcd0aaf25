"""Fixed-grid solvers for the Runge-Kutta families derived by tableau_gen."""
