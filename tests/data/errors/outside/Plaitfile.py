action("a", ["cp", "/etc/hostname", "x"], inputs=["../secret"], outputs=["x"])  # <- error
