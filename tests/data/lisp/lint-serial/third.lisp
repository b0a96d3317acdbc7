(in-package :lint-serial)

(defun answer () (with-base (b) (+ b 2)))
