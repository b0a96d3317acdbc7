(defsystem "lint-tool"
  :components ((:file "tool")))
