(eval-when (:compile-toplevel :load-toplevel :execute)
  (require :sb-rotate-byte))

(defpackage :plait-requiring (:use :cl) (:export #:rotated #:twice-rotated))
(in-package :plait-requiring)

(defun rotated (x)
  (sb-rotate-byte:rotate-byte 1 (byte 8 0) x))
