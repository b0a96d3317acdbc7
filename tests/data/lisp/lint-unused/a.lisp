(in-package :lint-unused)

(defun from-a () :a)
