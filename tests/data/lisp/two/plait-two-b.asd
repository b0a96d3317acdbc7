(defsystem "plait-two-b")
