;;; code.lisp is in the package package.lisp makes, and says nothing of it.
(defsystem "lint-package"
  :components ((:file "package")
               (:file "code")))
