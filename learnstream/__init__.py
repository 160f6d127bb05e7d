"""learnstream: CLI, settings and the local stack manager."""
