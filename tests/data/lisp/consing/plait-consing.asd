(defsystem "plait-consing"
  :components ((:file "consing")))
