action("a", ["touch", "x.o"], outputs=["x.o"])
action("b", ["touch", "y.o"] outputs=["y.o"])  # <- error
