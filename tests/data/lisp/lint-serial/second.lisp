(in-package :lint-serial)

(defmacro with-base ((var) &body body)
  `(let ((,var *base*)) ,@body))
