(defsystem "plait-badasd"
  :components ((:file "a"))
