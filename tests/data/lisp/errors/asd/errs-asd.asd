(defsystem "errs-asd"
  :components ((:file "a")))

(error "boom in asd")
