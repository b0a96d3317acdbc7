(defpackage :plait-fw-sb-rt-pass (:use :cl :sb-rt) (:export #:do-tests))
(in-package :plait-fw-sb-rt-pass)
(deftest adds (+ 2 2) 4)
