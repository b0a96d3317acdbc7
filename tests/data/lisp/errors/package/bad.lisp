(defun f ()
  1)
(defun g ()
  (nopkg:thing 2))
