"""Low-level mail: rendering (system templates, owner templates in the sandbox), building and delivering a message."""
