(defpackage :plait-exhausted-heap (:use :cl))
(in-package :plait-exhausted-heap)

;; Ask, at compile time, for more heap than SBCL has (1 GB unless built otherwise). A request
;; that finds nothing at all free, not even this one's worth, would end SBCL ("game over").
(eval-when (:compile-toplevel)
  (defparameter *kept* (make-array (* 4 1024 1024 1024) :element-type '(unsigned-byte 8))))
