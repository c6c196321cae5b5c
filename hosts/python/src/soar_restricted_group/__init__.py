"""Runs the sandboxed restricted-group plugin from Python (README, "Use from Python")."""

from .action import Host, Refusal, Report

__all__ = ["Host", "Refusal", "Report"]
