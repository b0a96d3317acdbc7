;;;; A system whose one load a warm server can perform for the tests, from the fasl of a.lisp
;;;; that a test puts in the sandbox.
(asdf:defsystem "warm-demo" :components ((:file "a")))
