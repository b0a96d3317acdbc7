(defpackage :plait-exhausted-stack (:use :cl))
(in-package :plait-exhausted-stack)

;; A macro whose expansion recurses without end.
(eval-when (:compile-toplevel :load-toplevel :execute)
  (defun deeper (n) (1+ (deeper (1+ n)))))

(defmacro bottomless () (deeper 0))

(defun never-compiled () (bottomless))
