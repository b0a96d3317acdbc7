action("a", "cc -c a.c", outputs=["a.o"])  # <- error
