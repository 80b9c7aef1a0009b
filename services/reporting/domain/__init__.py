"""Reporting rules: recording and reports (reports), crediting goal events to pushes
(conversions)."""
