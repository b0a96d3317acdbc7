(defsystem "lint-base"
  :components ((:file "base")))
