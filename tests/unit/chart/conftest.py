"""Fixtures of the chart tests (defined in chart_support.py)."""

from chart_support import chart_copy, checkov, helm, rendered

__all__ = ["chart_copy", "checkov", "helm", "rendered"]
