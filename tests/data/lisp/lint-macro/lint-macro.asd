;;; use.lisp calls a macro macros.lisp defines, and declares only the package.
(defsystem "lint-macro"
  :components ((:file "package")
               (:file "macros" :depends-on ("package"))
               (:file "use" :depends-on ("package"))))
