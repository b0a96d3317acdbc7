(defsystem "plait-dsd"
  :defsystem-depends-on ("plait-dsd-helper")
  :around-compile "plait-dsd-helper:call-inside-hook"
  :components ((:file "uses-hook")))
