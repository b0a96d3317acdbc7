action("a", ["cp", "a.c", "a.o"], inputs=["a.c"], outputs=["a.o"])
action("b", ["cp", "nope.c", "b.o"], inputs=["nope.c"], outputs=["b.o"])  # <- error
