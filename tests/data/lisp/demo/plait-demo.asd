(defsystem "plait-demo"
  :depends-on ("alexandria")
  :components ((:file "package")
               (:file "util" :depends-on ("package"))
               (:file "main" :depends-on ("util"))
               (:file "extra" :depends-on ("package")))
  :entry-point "plait-demo:main"
  :in-order-to ((test-op (test-op "plait-demo/tests"))))

(defsystem "plait-demo/tests"
  :depends-on ("plait-demo" "fiveam")
  :components ((:file "tests"))
  :perform (test-op (o c) (symbol-call :fiveam :run! :plait-demo)))
