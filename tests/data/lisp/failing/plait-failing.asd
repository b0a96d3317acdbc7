;; Tests whose framework reports a failure (ASDF's test-system would still return T),
;; and tests that signal an error.
(defsystem "plait-failing"
  :depends-on ("fiveam")
  :components ((:file "tests"))
  :perform (test-op (o c) (symbol-call :fiveam :run! :plait-failing)))

(defsystem "plait-failing/erroring"
  :components ((:file "erroring"))
  :perform (test-op (o c) (symbol-call :plait-erroring :run)))

;; A common pattern: the suite runs from inside another system's test-op, which loads the test
;; system itself and performs its test-op.
(defsystem "plait-failing/nested"
  :perform (test-op (o c)
             (load-system "plait-failing/nested-suite")
             (perform 'test-op "plait-failing/nested-suite")))

(defsystem "plait-failing/nested-suite"
  :depends-on ("fiveam")
  :components ((:file "nested"))
  :perform (test-op (o c) (symbol-call :fiveam :run! :plait-nested)))

;; The same pattern, with a suite that passes.
(defsystem "plait-failing/nested-passing"
  :perform (test-op (o c)
             (load-system "plait-failing/passing-suite")
             (perform 'test-op "plait-failing/passing-suite")))

(defsystem "plait-failing/passing-suite"
  :depends-on ("fiveam")
  :components ((:file "passing"))
  :perform (test-op (o c) (symbol-call :fiveam :run! :plait-passing)))

;; A suite that never ends (one Debian system's does, under ASDF too).
(defsystem "plait-failing/hanging"
  :perform (test-op (o c)
             (format t "~&Running test forever-and-ever~%")
             (finish-output)
             (loop (sleep 1))))
