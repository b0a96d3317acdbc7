(defsystem "errs-macro" :components ((:file "bad")))
