"""OpenTelemetry interop tests."""
