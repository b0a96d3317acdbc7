(defsystem "errs-reader" :components ((:file "bad")))
