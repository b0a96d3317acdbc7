;;; cffi-grovel's components: for each, a process-op writes a Lisp file that its compile-op
;;; compiles. A grovel file's runs a C program that prints the constants; a wrapper file's also
;;; links a library, whose directory the Lisp file names.
(defsystem "plait-grovel"
  :defsystem-depends-on ("cffi-grovel")
  :depends-on ("cffi")
  :serial t
  :components ((:file "package")
               (:cffi-grovel-file "constants")
               (:cffi-wrapper-file "wrappers" :soname "libplaitgrovel")
               (:file "use")))
