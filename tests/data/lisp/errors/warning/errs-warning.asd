(defsystem "errs-warning" :components ((:file "bad")))
