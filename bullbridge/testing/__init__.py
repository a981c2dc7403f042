"""Test helpers: a private Redis, a real Node BullMQ driver, cross-language waits."""
