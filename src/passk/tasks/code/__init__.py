"""Code tasks with a sandboxed test runner."""
