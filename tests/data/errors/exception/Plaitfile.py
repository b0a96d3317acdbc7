action("a", ["true"], outputs=["a"])
settings = {"cc": "gcc"}
compiler = settings["clang"]  # <- error
