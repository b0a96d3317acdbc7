(defpackage :plait-inferred/util (:use :cl) (:export #:twice))
(in-package :plait-inferred/util)

(defun twice (x) (* 2 x))
