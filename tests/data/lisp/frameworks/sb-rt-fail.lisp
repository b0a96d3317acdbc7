(defpackage :plait-fw-sb-rt-fail (:use :cl :sb-rt) (:export #:do-tests))
(in-package :plait-fw-sb-rt-fail)
(deftest adds (+ 2 2) 4)
(deftest wrong (+ 2 2) 5)
