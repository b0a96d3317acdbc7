(defpackage :plait-inferred/main (:use :cl :plait-inferred/more) (:export #:run))
(in-package :plait-inferred/main)

(defun run () (quad 3))
