;; Tests whose framework reports a failure (ASDF's test-system would still return T),
;; and tests that signal an error.
(defsystem "plait-failing"
  :depends-on ("fiveam")
  :components ((:file "tests"))
  :perform (test-op (o c) (symbol-call :fiveam :run! :plait-failing)))

(defsystem "plait-failing/erroring"
  :components ((:file "erroring"))
  :perform (test-op (o c) (symbol-call :plait-erroring :run)))
