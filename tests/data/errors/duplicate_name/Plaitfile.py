action("a", ["touch", "x.o"], outputs=["x.o"])
action("a", ["touch", "y.o"], outputs=["y.o"])  # <- error
