(defpackage :plait-fw-xptest-fail (:use :cl :xptest) (:export #:run))
(in-package :plait-fw-xptest-fail)
(def-test-fixture math () ())
(defparameter *suite* (make-test-suite "math" "arithmetic"))
(make-test-case "adds" 'math :test-suite *suite*
                :test-thunk (lambda (f) (declare (ignore f)) (unless (= 4 (+ 2 2)) (failure "no"))))
(make-test-case "wrong" 'math :test-suite *suite*
                :test-thunk (lambda (f) (declare (ignore f)) (unless (= 5 (+ 2 2)) (failure "2 + 2 is not 5"))))
(defun run () (report-result (run-test *suite*)))
