(defpackage :plait-exhausted-heap (:use :cl))
(in-package :plait-exhausted-heap)

;; Ask, at compile time, for more heap than SBCL has. (A request that finds nothing at all
;; free, not even a smaller one's worth, would end SBCL: "Heap exhausted, game over".)
(eval-when (:compile-toplevel)
  (defparameter *kept*
    (make-array (* 2 (sb-ext:dynamic-space-size)) :element-type '(unsigned-byte 8))))
