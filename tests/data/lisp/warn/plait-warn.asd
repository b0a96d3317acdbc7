(defsystem "plait-warn"
  :serial t
  :components ((:file "package")
               (:file "early")
               (:file "late")
               (:file "loud")))
