(defpackage :plait-fw-xptest-pass (:use :cl :xptest) (:export #:run))
(in-package :plait-fw-xptest-pass)
(def-test-fixture math () ())
(defparameter *suite* (make-test-suite "math" "arithmetic"))
(make-test-case "adds" 'math :test-suite *suite*
                :test-thunk (lambda (f) (declare (ignore f)) (unless (= 4 (+ 2 2)) (failure "no"))))
(defun run () (report-result (run-test *suite*)))
