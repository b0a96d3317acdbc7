(defpackage :lint-base (:use :cl) (:export #:twice))
(in-package :lint-base)

(defun twice (x) (* 2 x))
