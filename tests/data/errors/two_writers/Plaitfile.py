action("a", ["touch", "x.o"], outputs=["x.o"])
action("b", ["touch", "x.o"], outputs=["x.o"])  # <- error
