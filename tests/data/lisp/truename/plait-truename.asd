;;; A file that records where its fasl was loaded from, and one that compiles that in: under
;;; ASDF, the fasl's place in the user's cache.
(defsystem "plait-truename"
  :components ((:file "where") (:file "seen" :depends-on ("where"))))
