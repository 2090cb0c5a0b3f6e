"""Tools for problem authors: the checker, the scaffold of a new problem, and importers of other formats."""
