(uiop:define-package :plait-inferred/more (:use :cl :plait-inferred/util) (:export #:quad))
(in-package :plait-inferred/more)

(defun quad (x) (twice (twice x)))
