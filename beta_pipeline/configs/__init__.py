"""YAML configs and the security master shipped as package data (see README.md here)."""
