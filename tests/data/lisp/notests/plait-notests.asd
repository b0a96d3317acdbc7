(defsystem "plait-notests" :components ((:file "a")))
