"""The arbees operator CLI: a thin Typer layer over `arbees_core` (runtimes, playbooks, decisions)."""
