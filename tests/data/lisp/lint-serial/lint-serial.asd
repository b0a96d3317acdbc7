;;; Written :serial t, then the option was lost: each file uses what the one before defines.
(defsystem "lint-serial"
  :components ((:file "first")
               (:file "second")
               (:file "third")))
