;; A system per test framework Debian ships and outcome: plait's verdict must agree with what
;; the framework reports, whatever ASDF's test-system returns.
(defsystem "plait-frameworks")

(defmacro framework-systems (framework depends-on (&rest outcomes) run)
  "A system plait-frameworks/FRAMEWORK-OUTCOME for each OUTCOME, of the file of that name,
whose test-op calls RUN (a symbol of the package plait-fw-FRAMEWORK-OUTCOME)."
  `(progn
     ,@(loop :for outcome :in outcomes
             :for name := (format nil "~(~a-~a~)" framework outcome)
             :collect `(defsystem ,(format nil "plait-frameworks/~a" name)
                         :depends-on (,@depends-on)
                         :components ((:file ,name))
                         :perform (test-op (o c)
                                    (symbol-call ,(format nil "PLAIT-FW-~:@(~a~)" name)
                                                 ,(string run)))))))

(framework-systems rt ("rt") (pass fail expected) :do-tests)
(framework-systems sb-rt ("sb-rt") (pass fail) :do-tests)
(framework-systems rt-copy () (fail) :do-tests)
(framework-systems fiveam ("fiveam") (pass fail skip) :run!)
(framework-systems xlunit ("xlunit") (pass fail) :run)
(framework-systems xptest ("xptest") (pass fail) :run)
(framework-systems ptester ("ptester") (pass fail known) :run)
(framework-systems fiasco ("fiasco") (pass fail) :run)

;; A runner of its own, which prints and returns: plait cannot tell.
(defsystem "plait-frameworks/own-runner"
  :perform (test-op (o c) (format t "~&all 3 of my checks look fine~%")))
