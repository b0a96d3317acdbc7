(defsystem "errs-inpackage" :components ((:file "bad")))
