action("a", ["cc"], outputs=["a.o"], toolchain=["/no/such/dir"])  # <- error
