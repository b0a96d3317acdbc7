action("a", ["cc"], outputs=["a.o"], toolchain=["usr/lib/gcc"])  # <- error
