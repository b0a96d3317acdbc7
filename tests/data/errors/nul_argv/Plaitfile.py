action("a", ["echo", "a\0b"], outputs=["a.o"])  # <- error
