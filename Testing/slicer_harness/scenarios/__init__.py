"""What the tests do inside a Slicer session: one file per module, each function ``f(app, **args) -> JSON``."""
