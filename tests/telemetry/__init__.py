"""OpenTelemetry interop tests (issue #12)."""
