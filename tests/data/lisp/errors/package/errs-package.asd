(defsystem "errs-package" :components ((:file "bad")))
