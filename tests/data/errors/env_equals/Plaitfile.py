action("a", ["true"], outputs=["a.o"], env={"A=B": "c"})  # <- error
