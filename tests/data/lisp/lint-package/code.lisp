(in-package :lint-package)

(defun answer () 42)
