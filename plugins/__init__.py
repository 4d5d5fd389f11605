"""Built-in task plugins. Each registers through the ``suite.plugins`` entry point group."""
