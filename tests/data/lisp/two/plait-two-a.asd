(defsystem "plait-two-a")
