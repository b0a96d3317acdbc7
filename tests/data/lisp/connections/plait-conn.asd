;;;; Like cl-containers.asd: loads a system while it is being loaded, then uses what that
;;;; system added to ASDF's package; and defines a connection, which ASDF loads once both
;;;; systems it requires are loaded.
(when (and (not (member :plait-conn-helper *features*))
           (find-system "plait-conn-helper" nil))
  (load-system "plait-conn-helper"))

(defsystem "plait-conn"
  :depends-on ("plait-conn-helper")
  :components ((:file "main")))

#+plait-conn-helper
(plait-conn-defthing cl-user::*plait-conn-thing* ("a" "b"))

#+plait-conn-helper
(defsystem "plait-conn/extra"
  :class system-connection
  :depends-on ("plait-conn" "plait-conn-helper")
  :systems-required ("plait-conn" "plait-conn-helper")
  :components ((:file "extra")))
