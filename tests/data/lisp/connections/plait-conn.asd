;;;; Like cl-containers.asd: loads a system while it is being loaded, then uses what that
;;;; system added to ASDF's package.
(when (and (not (member :plait-conn-helper *features*))
           (find-system "plait-conn-helper" nil))
  (load-system "plait-conn-helper"))

(defsystem "plait-conn" :components ((:file "main")))

#+plait-conn-helper
(plait-conn-defthing cl-user::*plait-conn-thing* ("a" "b"))
