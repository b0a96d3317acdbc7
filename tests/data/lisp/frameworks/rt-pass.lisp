(defpackage :plait-fw-rt-pass (:use :cl :regression-test) (:export #:do-tests))
(in-package :plait-fw-rt-pass)
(deftest adds (+ 2 2) 4)
(deftest multiplies (* 2 3) 6)
