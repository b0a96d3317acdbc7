;; Loaded by ASDF while plait-dsd is defined: its hook must run around plait's compiles.
(defsystem "plait-dsd-helper"
  :components ((:file "helper")))
