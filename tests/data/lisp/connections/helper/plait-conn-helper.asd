;;;; Like asdf-system-connections: a system that adds a macro to ASDF's own package.
(defsystem "plait-conn-helper" :components ((:file "helper")))
