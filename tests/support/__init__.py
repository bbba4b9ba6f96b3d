"""Test helpers shared by the test files: a local HTTP server with faults, served test catalogs."""
