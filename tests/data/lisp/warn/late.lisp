(in-package :plait-warn)

(defun defined-later () :later)
(defvar *defined-later* :later)
(defun uses-it-too () (never-defined))

(eval-when (:compile-toplevel :load-toplevel :execute)
  (defun defined-at-compile-time () :now))
