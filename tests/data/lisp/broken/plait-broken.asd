(defsystem "plait-broken"
  :components ((:file "good")
               (:file "bad")))
