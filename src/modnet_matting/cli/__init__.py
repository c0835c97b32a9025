"""Thin command-line shells over the library: one module per ``modnet`` subcommand."""
