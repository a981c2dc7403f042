"""A small Django project for tests/contrib: settings (SQLite, two BullMQ task
backends on the test session's Redis), one model, and tasks."""
