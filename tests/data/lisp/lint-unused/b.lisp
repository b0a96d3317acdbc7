(in-package :lint-unused)

(defun from-b () :b)
