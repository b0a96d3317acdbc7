;;; b.lisp declares it needs a.lisp, and uses nothing a.lisp defines.
(defsystem "lint-unused"
  :components ((:file "package")
               (:file "a" :depends-on ("package"))
               (:file "b" :depends-on ("package" "a"))))
