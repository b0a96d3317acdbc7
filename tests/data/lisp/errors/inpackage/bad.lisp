(defun f () 1)
  (in-package :nopkg-here)
(defun h () 2)
