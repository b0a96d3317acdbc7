(in-package :plait-warn)

;; A full WARNING: a constant of the wrong type where a number is needed.
(defun loud () (+ 1 "two"))
