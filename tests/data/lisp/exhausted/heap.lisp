(defpackage :plait-exhausted-heap (:use :cl))
(in-package :plait-exhausted-heap)

;; Keep all the heap there is, at compile time.
(eval-when (:compile-toplevel)
  (defparameter *kept* '())
  (loop (push (make-array 100000) *kept*)))
